"""The server side of a request: read it whole on the event loop, then run it.

granian speaks ASGI to this adapter. Headers are read and parsed by granian (with its header
deadline); the body is read here, on the worker's event loop, up to the size limit and before
a deadline. Only a complete request is handed to the Flask (WSGI) app, and its whole answer is
sent back from the event loop. A client that is slow to send or to read therefore waits on the
event loop, where waiting holds nothing: no thread, no lock, no database connection. That is
the design, not a rule the code must keep (docs/request-path.md).

Where the app runs: an API read (GET, HEAD, OPTIONS without cookies) runs on the event loop
itself, as an ``async def`` handler of an ASGI framework would; it only computes and reads
(its audit event waits in memory for the next flush), so handing it to a thread and back
would cost more than it does. Everything else runs in a bounded pool of threads, because it
may wait for a group commit and other requests must go on meanwhile: a change; a browser's
read (it sends its session cookie, and a signed-in session is touched or ended by a write);
the reads named in ``threaded_reads``, which take long and audit as they go (the export); and
every read while ``reads_must_wait`` says the read audit is flooded, so that its backpressure
(a read waits for the flush) holds threads, never the event loop."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from healthcare.observability import SECURITY_HEADERS

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(Exception):
    """The request's body is longer than the limit."""


class ClientGone(Exception):
    """The client closed the connection before its request was complete."""


@dataclass(frozen=True)
class LargeUpload:
    """A route that takes a body larger than the general limit (the admin's import)."""

    limit: int
    deadline: float


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


class WholeRequests:
    """An ASGI app around a WSGI app: ``body_limit`` bytes at most, read within ``deadline``
    seconds (else 413 or 408), then the WSGI app: on the event loop for an API read, in one
    of ``threads`` threads otherwise (see the module's docstring)."""

    def __init__(
        self,
        wsgi_app: WSGIApplication,
        *,
        body_limit: int,
        deadline: float,
        threads: int,
        on_shutdown: Callable[[], None] = lambda: None,
        large_uploads: Mapping[str, LargeUpload] | None = None,
        threaded_reads: tuple[str, ...] = (),
        reads_must_wait: Callable[[], bool] = lambda: False,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.body_limit = body_limit
        self.deadline = deadline
        self.large_uploads = dict(large_uploads or {})
        self.threaded_reads = threaded_reads
        self.reads_must_wait = reads_must_wait
        self._one_large_upload = asyncio.Semaphore(1)
        self.on_shutdown = on_shutdown
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="request")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                answer = await self._answer(scope, receive)
            except ClientGone:
                return  # nobody to answer, and an incomplete request is never run
            await send({"type": "http.response.start", "status": answer.status,
                        "headers": answer.headers})  # fmt: skip
            await send({"type": "http.response.body", "body": answer.body})

    async def _answer(self, scope: Scope, receive: Receive) -> Answer:
        upload = self.large_uploads.get(scope["path"]) if scope["method"] == "POST" else None
        try:
            if not declares_body(scope):
                body = b""  # nothing to wait for: no read, no deadline timer
            elif upload is None:
                async with asyncio.timeout(self.deadline):
                    body = await read_body(scope, receive, self.body_limit)
            else:
                body = await self._read_large_upload(scope, receive, upload)
        except TimeoutError:
            return refusal(408, "Request Timeout", "The request was not received in time.")
        except BodyTooLarge:
            return refusal(413, "Content Too Large", "The request body is too large.")
        environ = wsgi_environ(scope, body)
        if self.runs_on_the_loop(scope):
            return run_wsgi(self.wsgi_app, environ)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, run_wsgi, self.wsgi_app, environ)

    def runs_on_the_loop(self, scope: Scope) -> bool:
        """An API read runs where it arrived; a change, a browser's read (cookies), a read
        named in ``threaded_reads``, or any read while ``reads_must_wait`` (the read audit's
        backpressure) runs in the pool."""
        return (
            scope["method"] in SAFE_METHODS
            and _header(scope, b"cookie") is None
            and not scope["path"].startswith(self.threaded_reads)
            and not self.reads_must_wait()
        )

    async def _read_large_upload(
        self, scope: Scope, receive: Receive, upload: LargeUpload
    ) -> bytes:
        """One at a time per worker, so that the memory held by uploads stays bounded; the
        others wait on the event loop, where waiting holds nothing else."""
        async with self._one_large_upload, asyncio.timeout(upload.deadline):
            return await read_body(scope, receive, upload.limit)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.pool.shutdown(wait=True)
                self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def declares_body(scope: Scope) -> bool:
    """Whether the request has a body to read. In HTTP/1 only a Content-Length or a
    Transfer-Encoding says so (RFC 9112, 6.3); an HTTP/2 request may send one regardless."""
    if not scope["http_version"].startswith("1"):
        return True
    return _header(scope, b"content-length") is not None or (
        _header(scope, b"transfer-encoding") is not None
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def wsgi_environ(scope: Scope, body: bytes) -> WSGIEnvironment:
    """PEP 3333's environ for a complete request (as asgiref's WsgiToAsgi builds it)."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
        "PATH_INFO": scope["path"].encode().decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[name] = value
            continue
        key = f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    if body or "CONTENT_LENGTH" in environ:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ  # type: ignore[return-value]


def run_wsgi(wsgi_app: WSGIApplication, environ: WSGIEnvironment) -> Answer:
    """Run the app on a complete request and collect its complete answer (in a pool thread)."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return lambda _data: None

    body = wsgi_app(environ, start_response)
    try:
        content = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    status, headers = started
    return Answer(
        int(status[:3]), [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers], content
    )


def refusal(status: int, title: str, detail: str) -> Answer:
    """A problem answer for a request that never reached the app, with the app's headers."""
    content = orjson.dumps({"type": "about:blank", "title": title, "status": status,
                            "detail": detail})  # fmt: skip
    headers = [
        ("Content-Type", "application/problem+json"),
        ("Connection", "close"),
        ("Cache-Control", "no-store"),
        *SECURITY_HEADERS,
    ]
    return Answer(status, [(k.encode(), v.encode()) for k, v in headers], content)
