"""Errors under /fhir as OperationOutcome resources, never problem+json or HTML.

Refusals of the service layer and validation errors raised by the FHIR views are answered by
the blueprint's handlers; anything answered before or outside a FHIR view (401 and 403 from
authentication, 404 for an unknown path, 405, 413) is answered by the app's handlers as a
problem and turned into an OperationOutcome on its way out, with its status and headers."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, request
from pydantic import ValidationError

from healthcare.api.problems import PROBLEM_JSON, field_errors
from healthcare.errors import Deleted, PossibleDuplicates, ServiceError, VersionMismatch
from healthcare.fhir.resources import FHIR_PATHS, InvalidRequest

FHIR_JSON = "application/fhir+json"
PREFIX = "/fhir/"
# FHIR's IssueType codes (http://hl7.org/fhir/R4/valueset-issue-type.html) by HTTP status.
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
}


def fhir_response(body: Any, status: int = 200, **headers: str) -> Response:
    return Response(orjson.dumps(body), status, headers, mimetype=FHIR_JSON)


def issue(status: int, diagnostics: str, expression: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "severity": "error" if status < 500 else "fatal",
        "code": ISSUE_CODES.get(status, "exception"),
        "diagnostics": diagnostics,
    }
    if expression:
        found["expression"] = [expression]
    return found


def outcome(status: int, issues: list[dict[str, Any]], **headers: str) -> Response:
    return fhir_response({"resourceType": "OperationOutcome", "issue": issues}, status, **headers)


def refusal(status: int, diagnostics: str, **headers: str) -> Response:
    return outcome(status, [issue(status, diagnostics)], **headers)


def service_refusal(exc: ServiceError) -> Response:
    """410 Gone for a deleted record; the service's status for everything else."""
    status = 410 if isinstance(exc, Deleted) else exc.status
    headers = {}
    if isinstance(exc, VersionMismatch) and exc.current_version is not None:
        headers["ETag"] = f'W/"{exc.current_version}"'
    if isinstance(exc, PossibleDuplicates):
        return outcome(status, duplicate_issues(exc), **headers)
    return refusal(status, exc.detail, **headers)


def duplicate_issues(exc: PossibleDuplicates) -> list[dict[str, Any]]:
    """The refusal, then one issue per likely duplicate, naming it as Patient/{id}."""
    first = {**issue(409, exc.detail), "code": "duplicate"}
    candidates = [
        {
            "severity": "information",
            "code": "duplicate",
            "diagnostics": f"Patient/{c['id']} ({c['name']}, {c['mrn']}): "
            + ", ".join(c["reasons"]),
        }
        for c in exc.candidates
    ]
    return [first, *candidates]


def invalid_patient(exc: ValidationError) -> Response:
    """The service schema's field errors, each pinned to where it lives in a Patient."""
    issues = [
        issue(422, f"{error['field']}: {error['message']}", FHIR_PATHS.get(error["field"]))
        for error in field_errors(exc)
    ]
    return outcome(422, issues)


def invalid_request(exc: InvalidRequest) -> Response:
    return outcome(400, [issue(400, message, where) for where, message in exc.errors])


def problems_as_outcomes(response: Response) -> Response:
    """A problem answered for a /fhir path (by authentication, routing, the body limit) as an
    OperationOutcome with the same status and headers."""
    if response.mimetype != PROBLEM_JSON or not request.path.startswith(PREFIX):
        return response
    problem = orjson.loads(response.get_data())
    converted = refusal(response.status_code, problem.get("detail") or problem.get("title", ""))
    for name, value in response.headers.items():
        if name not in ("Content-Type", "Content-Length"):
            converted.headers[name] = value
    return converted
