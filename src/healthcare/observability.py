"""Request ids and one JSON log line per request. Paths are logged without their query string,
so a name typed into the search box never reaches the log.

The request id is always made here (issue 13, item 9): it names the request in the audit
trail, the logs and the answer's X-Request-ID, and a client cannot choose it (to collide with
another request's rows, or plant text in the trail). A well-formed X-Request-ID the client
sent is logged beside it as ``client_request_id``, for tracing across systems."""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import re
import sys
import threading
import time
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import orjson
from flask import Flask, request

from healthcare import metrics

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
REQUEST_ID_KEY = "healthcare.request_id"
service_log = logging.getLogger("healthcare")
access_log = logging.getLogger("healthcare.access")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    # Replaces the server's own banner: nothing about the software or its version.
    ("Server", "healthcare"),
)
NO_CONTENT = ("204", "304")
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


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


class BufferedStreamHandler(logging.Handler):
    """Formats on the caller's thread but writes from a background thread every
    ``interval`` seconds, one write for many lines: a write and flush per request, under the
    handler's lock, made request threads queue behind each other. Warnings and errors are
    written at once, and whatever is buffered is written at exit."""

    def __init__(self, stream: IO[str], interval: float = 0.2) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self._lines: list[str] = []
        self._pid = os.getpid()
        atexit.register(self.flush)
        self._start_flusher()

    def _start_flusher(self) -> None:
        def flush_forever() -> None:
            while True:
                time.sleep(self.interval)
                self.flush()

        threading.Thread(target=flush_forever, name="log-flusher", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # logging must never break a request
            self.handleError(record)
            return
        self.write_line(line)
        if record.levelno >= logging.WARNING:
            self.flush()

    def write_line(self, line: str) -> None:
        """Queue one finished line (the access log formats its own)."""
        if self._pid != os.getpid():  # a forked worker inherits no threads
            self._pid = os.getpid()
            self._start_flusher()
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(line)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._lines = self._lines, []
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()


def configure_logging(level: str, *, to_stdout: bool = True) -> None:
    """JSON lines on stdout at ``level``; tests attach handlers of their own instead."""
    if to_stdout and not any(isinstance(h, BufferedStreamHandler) for h in service_log.handlers):
        handler = BufferedStreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        service_log.addHandler(handler)
    service_log.setLevel(level)
    service_log.propagate = False


def write_line_now(level: int, message: str) -> None:
    """One JSON log line straight to stdout, with no handler and no thread: for the server's
    parent process, whose threads and locks its forked workers would inherit."""
    record = logging.LogRecord(service_log.name, level, __file__, 0, message, None, None)
    sys.stdout.write(JsonFormatter().format(record) + "\n")
    sys.stdout.flush()


def current_request_id() -> str:
    return request.environ.get(REQUEST_ID_KEY, "-")


class RequestIds:
    """Request ids unique across processes and restarts: a random prefix per process and a
    counter (a fresh random id per request cost a system call, a tenth of a simple read)."""

    def __init__(self) -> None:
        self._pid = 0
        self._prefix = ""
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> str:
        if self._pid != os.getpid():  # a forked worker must not repeat its parent's ids
            self._start_in_this_process()
        return f"{self._prefix}{next(self._counter):016x}"

    def _start_in_this_process(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._prefix, self._counter = os.urandom(8).hex(), itertools.count()
                self._pid = os.getpid()


class RequestMiddleware:
    """Around every request, before Flask: the request id (echoed or made), the security
    headers (a strict CSP, nosniff, no framing, HSTS over HTTPS), `Cache-Control: no-store` on
    anything that does not set its own caching (answers carry patient data), and the access
    log line. As WSGI middleware it costs a fraction of Flask's request hooks."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app
        self.ids = RequestIds()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = self.ids.next()  # always the server's: the client's is only logged
        environ[REQUEST_ID_KEY] = request_id
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        client_request_id = incoming if REQUEST_ID.fullmatch(incoming) else None
        started = time.perf_counter()
        status = ["500"]

        def start(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = code
            if code[:3] in NO_CONTENT:  # nothing follows, so no type either
                headers[:] = [(k, v) for k, v in headers if k.lower() != "content-type"]
            headers.append(("X-Request-ID", request_id))
            headers.extend(SECURITY_HEADERS)
            if environ.get("wsgi.url_scheme") == "https":
                headers.append(HSTS)
            if not any(name.lower() == "cache-control" for name, _value in headers):
                headers.append(("Cache-Control", "no-store"))
            return start_response(code, headers, exc_info)

        try:
            return self.wsgi_app(environ, start)
        finally:
            code = int(status[0][:3])
            route = environ.get(metrics.ROUTE_KEY, metrics.UNMATCHED)
            metrics.observe_request(environ["REQUEST_METHOD"], route, code,
                                    time.perf_counter() - started)  # fmt: skip
            if access_log.isEnabledFor(logging.INFO):
                _log_request(environ, request_id, client_request_id, int(status[0][:3]), started)


def _log_request(
    environ: WSGIEnvironment,
    request_id: str,
    client_request_id: str | None,
    status: int,
    started: float,
) -> None:
    """The access line, built directly in JsonFormatter's shape: a LogRecord, its caller
    lookup and the formatter cost more than the rest of the request's bookkeeping."""
    fields: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "info",
        "logger": access_log.name,
        "message": "request",
        "request_id": request_id,
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if client_request_id is not None:
        fields["client_request_id"] = client_request_id
    line = orjson.dumps(fields).decode()
    for handler in service_log.handlers:
        if isinstance(handler, BufferedStreamHandler):
            handler.write_line(line)


def _note_route() -> None:
    """The matched route's template (``/patients/<int:patient_id>``), for the metrics: one
    label per route, never per path."""
    if request.url_rule is not None:
        request.environ[metrics.ROUTE_KEY] = request.url_rule.rule


def init_app(app: Flask) -> None:
    # First of the hooks: a request refused by an earlier one (401) still has its route.
    app.before_request_funcs.setdefault(None, []).insert(0, _note_route)
    app.wsgi_app = RequestMiddleware(app.wsgi_app)  # type: ignore[method-assign]
