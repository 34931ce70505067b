"""Request ids and one JSON log line per request. Paths are logged without their query string,
so a name typed into the search box never reaches the log."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Flask, Response, g, request

REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
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
    return g.get("request_id", "-")


def _start_request() -> None:
    incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
    g.request_id = incoming if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    g.started = time.perf_counter()


def _finish_request(response: Response) -> Response:
    request_id = g.request_id
    response.headers["X-Request-ID"] = request_id
    if access_log.isEnabledFor(logging.INFO):
        fields = {
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - g.started) * 1000, 2),
        }
        # makeRecord + handle skips Logger.info's search of the call stack for the caller,
        # which costs more than the rest of the request's logging on the hot path.
        record = access_log.makeRecord(
            access_log.name, logging.INFO, __file__, 0, "request", (), None,
            extra={"fields": fields},
        )  # fmt: skip
        access_log.handle(record)
    return response


def init_app(app: Flask) -> None:
    app.before_request(_start_request)
    app.after_request(_finish_request)
