"""The server adapter: a request reaches the Flask app only once it is complete, and a client
that is slow to send waits on the event loop, holding no thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import orjson
import pytest

from healthcare.whole_requests import LargeUpload, Message, WholeRequests, wsgi_environ

Seen = list[dict[str, Any]]
CHUNKED = [(b"transfer-encoding", b"chunked")]  # a body of unknown length follows


def recording_app(seen: Seen) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append({**environ, "body": environ["wsgi.input"].read(),
                     "thread": threading.current_thread().name})  # fmt: skip
        start_response("201 CREATED", [("Content-Type", "text/plain")])
        return [b"made ", b"it"]

    return app


def scope(
    method: str = "POST", headers: list[tuple[bytes, bytes]] | None = None, path: str = "/patients"
) -> Message:
    return {
        "type": "http", "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "root_path": "", "query_string": b"q=an&limit=2",
        "headers": CHUNKED if headers is None else headers, "client": ("10.0.0.7", 5555),
        "server": ("127.0.0.1", 9000),
    }  # fmt: skip


def receiving(*chunks: bytes, then_wait: bool = False) -> Any:
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    if not then_wait:
        messages[-1]["more_body"] = False

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # a client that never sends the rest
        raise AssertionError("unreachable")

    return receive


def serve(adapter: WholeRequests, request: Message, receive: Any) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(adapter(request, receive, send))
    return sent


def adapter(seen: Seen, **options: Any) -> WholeRequests:
    return WholeRequests(recording_app(seen), **{"body_limit": 100, "deadline": 5, "threads": 2,
                                                 **options})  # fmt: skip


def test_a_complete_request_runs_in_a_pool_thread_with_its_whole_body() -> None:
    seen: Seen = []
    headers = [(b"content-type", b"application/json"), (b"content-length", b"11"),
               (b"x-tag", b"a"), (b"x-tag", b"b")]  # fmt: skip
    sent = serve(adapter(seen), scope(headers=headers), receiving(b'{"na', b'me": 1}'))
    assert sent == [
        {"type": "http.response.start", "status": 201,
         "headers": [(b"Content-Type", b"text/plain")]},
        {"type": "http.response.body", "body": b"made it"},
    ]  # fmt: skip
    environ = seen[0]
    assert environ["body"] == b'{"name": 1}'
    assert environ["CONTENT_LENGTH"] == "11"
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["HTTP_X_TAG"] == "a,b"
    assert (environ["QUERY_STRING"], environ["REMOTE_ADDR"]) == ("q=an&limit=2", "10.0.0.7")
    assert environ["thread"].startswith("request")


SESSION = [(b"cookie", b"healthcare_session=abc")]


@pytest.mark.parametrize(
    ("method", "path", "headers", "runs_in"),
    [("GET", "/patients/7", [], "MainThread"), ("HEAD", "/patients/7", [], "MainThread"),
     ("POST", "/patients", CHUNKED, "request"), ("DELETE", "/patients/7", [], "request"),
     ("GET", "/ui/patients", SESSION, "request"), ("GET", "/patients/7", SESSION, "request"),
     ("GET", "/ui/admin/export.csv", [], "request")],
)  # fmt: skip
def test_an_api_read_runs_on_the_event_loop_and_anything_that_may_write_in_the_pool(
    method: str, path: str, headers: list[tuple[bytes, bytes]], runs_in: str
) -> None:
    """A change waits for its group commit, a browser's session may be touched by a write and
    the export audits as it goes, so other requests must go on meanwhile; an API read only
    computes. asyncio.run runs the event loop on the main thread here."""
    seen: Seen = []
    server = adapter(seen, threaded_reads=("/ui/admin/export.",))
    sent = serve(server, scope(method, headers=headers, path=path), receiving(b""))
    assert sent[0]["status"] == 201
    assert seen[0]["thread"].startswith(runs_in)


def test_a_request_that_declares_no_body_is_run_without_waiting_for_one() -> None:
    """HTTP/1: no Content-Length and no Transfer-Encoding means no body (RFC 9112, 6.3), so
    the adapter does not wait for one (a client that sends nothing more is still answered)."""
    seen: Seen = []
    never: Any = receiving(then_wait=True)
    sent = serve(adapter(seen, deadline=0.05), scope("GET", headers=[]), never)
    assert sent[0]["status"] == 201
    assert seen[0]["body"] == b""
    assert "CONTENT_LENGTH" not in seen[0]


def test_an_http2_request_is_read_whole_whether_or_not_it_declares_a_length() -> None:
    seen: Seen = []
    request = {**scope(headers=[]), "http_version": "2"}
    serve(adapter(seen), request, receiving(b'{"a"', b": 1}"))
    assert seen[0]["body"] == b'{"a": 1}'


def test_a_body_not_received_by_the_deadline_is_refused_with_408() -> None:
    seen: Seen = []
    sent = serve(adapter(seen, deadline=0.05), scope(), receiving(b"{", then_wait=True))
    assert sent[0]["status"] == 408
    assert (b"Connection", b"close") in sent[0]["headers"]
    assert orjson.loads(sent[1]["body"])["status"] == 408
    assert seen == []  # the app never saw it


@pytest.mark.parametrize(
    ("headers", "chunks"),
    [([(b"content-length", b"101")], [b""]), (CHUNKED, [b"x" * 60, b"x" * 41])],
    ids=["declared", "streamed"],
)
def test_a_body_over_the_limit_is_refused_with_413(
    headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> None:
    seen: Seen = []
    sent = serve(adapter(seen), scope(headers=headers), receiving(*chunks))
    assert sent[0]["status"] == 413
    assert (b"X-Content-Type-Options", b"nosniff") in sent[0]["headers"]
    assert seen == []


def test_a_slow_client_holds_no_thread_while_others_are_answered() -> None:
    """With one pool thread, nine clients that never finish their bodies and one complete
    request: the complete one is answered while the nine still wait."""
    seen: Seen = []
    server = adapter(seen, threads=1, deadline=30)

    async def scenario() -> list[Message]:
        async def ignore(_message: Message) -> None:
            return None

        stuck = [asyncio.create_task(server(scope(), receiving(b"{", then_wait=True), ignore))
                 for _ in range(9)]  # fmt: skip
        await asyncio.sleep(0.01)
        answered: list[Message] = []

        async def record(message: Message) -> None:
            answered.append(message)

        await asyncio.wait_for(server(scope(), receiving(b"{}"), record), timeout=5)
        assert not any(task.done() for task in stuck)
        for task in stuck:
            task.cancel()
        return answered

    answered = asyncio.run(scenario())
    assert answered[0]["status"] == 201
    assert [e["body"] for e in seen] == [b"{}"]


def test_lifespan_shutdown_closes_what_the_app_holds() -> None:
    closed: list[bool] = []
    server = WholeRequests(recording_app([]), body_limit=10, deadline=1, threads=1,
                           on_shutdown=lambda: closed.append(True))  # fmt: skip
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> Message:
        return messages.pop(0)

    sent = serve(server, {"type": "lifespan"}, receive)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert closed == [True]


def test_a_request_without_a_body_has_no_content_length() -> None:
    environ = wsgi_environ(scope("GET"), b"")
    assert "CONTENT_LENGTH" not in environ
    assert environ["wsgi.input"].read() == b""


def test_a_request_whose_client_left_mid_body_is_never_run() -> None:
    seen: Seen = []
    messages = [{"type": "http.request", "body": b"{", "more_body": True},
                {"type": "http.disconnect"}]  # fmt: skip

    async def receive() -> Message:
        return messages.pop(0)

    assert serve(adapter(seen), scope(), receive) == []
    assert seen == []


@pytest.mark.parametrize(
    ("method", "path", "size", "status"),
    [
        ("POST", "/ui/admin/import", 1_000, 201),  # over the general limit, under its own
        ("POST", "/ui/admin/import", 1_001, 413),  # over its own
        ("PUT", "/ui/admin/import", 101, 413),  # only the upload itself
        ("POST", "/patients", 101, 413),  # every other route keeps the general limit
    ],
)
def test_only_the_upload_route_takes_a_larger_body(
    method: str, path: str, size: int, status: int
) -> None:
    seen: Seen = []
    uploads = {"/ui/admin/import": LargeUpload(limit=1_000, deadline=5)}
    sent = serve(adapter(seen, large_uploads=uploads), scope(method, path=path),
                 receiving(b"x" * size))  # fmt: skip
    assert sent[0]["status"] == status
    assert len(seen) == (1 if status == 201 else 0)


def test_an_api_read_runs_in_the_pool_while_the_read_audit_holds_reads_back() -> None:
    """Backpressure makes a read wait for the audit flush: that wait must hold a thread,
    never the event loop that every other request of the worker needs."""
    seen: Seen = []
    flooded = [True]
    server = adapter(seen, reads_must_wait=lambda: flooded[0])
    serve(server, scope("GET", headers=[], path="/patients/7"), receiving(b""))
    flooded[0] = False
    serve(server, scope("GET", headers=[], path="/patients/7"), receiving(b""))
    assert [e["thread"][:7] for e in seen] == ["request", "MainThr"]
