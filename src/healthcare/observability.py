"""Request ids and one JSON log line per request. Paths are logged without their query string,
so a name typed into the search box never reaches the log."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from flask import Flask, request

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
REQUEST_ID_KEY = "healthcare.request_id"
access_log = logging.getLogger("healthcare.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str) -> None:
    root = logging.getLogger("healthcare")
    if not any(getattr(h, "healthcare_json", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        handler.healthcare_json = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def current_request_id() -> str:
    return request.environ.get(REQUEST_ID_KEY, "-")


class RequestMiddleware:
    """Around every request, before Flask: the request id (echoed or made), `Cache-Control:
    no-store` on anything that does not set its own caching (answers carry patient data), and
    the access log line. As WSGI middleware it costs a fraction of Flask's request hooks."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        environ[REQUEST_ID_KEY] = request_id
        started = time.perf_counter()
        status = ["500"]

        def start(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = code
            headers.append(("X-Request-ID", request_id))
            if not any(name.lower() == "cache-control" for name, _ in headers):
                headers.append(("Cache-Control", "no-store"))
            return start_response(code, headers, exc_info)

        try:
            return self.wsgi_app(environ, start)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                _log_request(environ, request_id, int(status[0][:3]), started)


def _log_request(environ: WSGIEnvironment, request_id: str, status: int, started: float) -> None:
    fields = {
        "request_id": request_id,
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    # makeRecord + handle skips Logger.info's walk up the call stack to find its caller.
    record = access_log.makeRecord(
        access_log.name, logging.INFO, __file__, 0, "request", (), None, extra={"fields": fields}
    )
    access_log.handle(record)


def init_app(app: Flask) -> None:
    app.wsgi_app = RequestMiddleware(app.wsgi_app)  # type: ignore[method-assign]
