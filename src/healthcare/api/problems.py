"""RFC 9457 problem details for every error on an API path: never HTML, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, Response, current_app
from pydantic import BaseModel, ConfigDict, ValidationError
from werkzeug.exceptions import HTTPException

from healthcare.errors import (
    AuditBacklog,
    PossibleDuplicates,
    ServiceError,
    TooManyAttempts,
    VersionMismatch,
)
from healthcare.observability import current_request_id

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("healthcare.errors")


class FieldProblem(BaseModel):
    field: str
    message: str
    type: str


class Problem(BaseModel):
    model_config = ConfigDict(
        openapi_extra={
            "content": {
                PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}},
            }
        }
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    request_id: str | None = None
    errors: list[FieldProblem] | None = None


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(orjson.dumps(body), status=status, mimetype=PROBLEM_JSON)


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(str(part) for part in err["loc"]) or "body",
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]


def validation_problem(exc: ValidationError) -> Response:
    errors = field_errors(exc)
    names = ", ".join(sorted({e["field"] for e in errors}))
    return problem(422, "Invalid data", f"Check these fields: {names}.", errors=errors)


def as_page(exc: Exception) -> Any:
    """The browser pages answer errors with HTML pages of their own (see healthcare.ui)."""
    pages = current_app.extensions.get("healthcare.page_errors")
    return pages(exc) if pages else None


def _http_problem(exc: HTTPException) -> Any:
    if (page := as_page(exc)) is not None:
        return page
    response = problem(exc.code or 500, exc.name, exc.description or exc.name)
    headers = dict(exc.get_headers())
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in headers:
            response.headers[name] = headers[name]
    return response


def service_problem(exc: ServiceError) -> Response:
    """A refusal of the service layer (not found, stale version, ...) as an API answer."""
    extra = {"candidates": exc.candidates} if isinstance(exc, PossibleDuplicates) else {}
    response = problem(exc.status, exc.title, exc.detail, **extra)
    if isinstance(exc, VersionMismatch) and exc.current_version is not None:
        response.headers["ETag"] = f'"{exc.current_version}"'
    if isinstance(exc, TooManyAttempts | AuditBacklog):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def unexpected_problem(exc: Exception, request_id: str) -> Response:
    """Logged with the request id, which the answer quotes; nothing else about it leaves."""
    log.error("unhandled error", exc_info=exc, extra={"fields": {"request_id": request_id}})
    return problem(
        500,
        "Internal server error",
        f"Something went wrong on our side. Quote request id {request_id} when reporting it.",
        request_id=request_id,
    )


def _service_problem(exc: ServiceError) -> Any:
    if (page := as_page(exc)) is not None:
        return page
    return service_problem(exc)


def _unexpected_problem(exc: Exception) -> Any:
    response = unexpected_problem(exc, current_request_id())
    page = as_page(exc)
    return page if page is not None else response


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_problem)
    app.register_error_handler(ServiceError, _service_problem)
    app.register_error_handler(ValidationError, validation_problem)
    app.register_error_handler(Exception, _unexpected_problem)
