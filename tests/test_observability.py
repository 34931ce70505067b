"""One JSON line per request, request ids, and no patient data in any log line."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from healthcare.auth.sessions import COOKIE
from healthcare.db.database import Database
from healthcare.observability import BufferedStreamHandler, RequestIds
from tests.auth.test_sessions import csrf_from, sign_in
from tests.conftest import TEST_PASSWORD, Account, audit_rows, bearer, new_patient

SECRET_NAME = "Philippa Quarrington"
SECRET_DISEASE = "Rare-Condition-XYZ"


def test_each_request_logs_one_json_line(
    client: FlaskClient, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    server_id = response.headers["X-Request-ID"]
    (line,) = [line for line in log_lines() if line["logger"] == "healthcare.access"]
    assert line["request_id"] == server_id
    assert line["client_request_id"] == "abc-123"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    assert line["duration_ms"] >= 0


def test_unsafe_client_request_ids_are_not_logged(
    client: FlaskClient, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"})
    assert len(response.headers["X-Request-ID"]) == 32
    (line,) = [line for line in log_lines() if line["logger"] == "healthcare.access"]
    assert "client_request_id" not in line


def test_the_audit_request_id_is_the_servers_not_the_clients(
    client: FlaskClient, db: Database, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    """Issue 13, item 9: a client-chosen X-Request-ID became the audit row's request id."""
    patient = new_patient(client)
    response = client.get(f"/patients/{patient['id']}", headers={"X-Request-ID": "chosen-1"})
    server_id = response.headers["X-Request-ID"]
    assert server_id != "chosen-1"
    [read] = audit_rows(db, action="patient.read")
    assert read["request_id"] == server_id
    [line] = [line for line in log_lines() if line.get("request_id") == server_id]
    assert line["client_request_id"] == "chosen-1"


def test_no_patient_data_in_any_log_line(
    client: FlaskClient, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    patient = new_patient(client, name=SECRET_NAME, disease=SECRET_DISEASE)
    client.get("/patients", query_string={"q": SECRET_NAME, "disease": SECRET_DISEASE})
    client.put(f"/patients/{patient['id']}", json={"name": SECRET_NAME, "age": -5})
    client.post("/patients", json={"name": SECRET_NAME, "disease": SECRET_DISEASE, "age": "x"})
    client.patch(f"/patients/{patient['id']}", json={"disease": SECRET_DISEASE.lower()})
    lines = log_lines()
    assert len(lines) >= 5
    text = repr(lines).lower()
    for secret in [SECRET_NAME, "philippa", SECRET_DISEASE]:
        assert secret.lower() not in text


def test_buffered_log_lines_reach_the_stream_on_flush_and_errors_at_once() -> None:
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, interval=60)
    logger = logging.getLogger("healthcare.test-buffer")
    logger.addHandler(handler)
    try:
        logger.warning("first")
        assert stream.getvalue() == "first\n"
        logger.error("second")
        assert stream.getvalue().splitlines() == ["first", "second"]
        logger.setLevel(logging.INFO)
        logger.info("third")
        assert "third" not in stream.getvalue()
        handler.flush()
        assert stream.getvalue().splitlines()[-1] == "third"
    finally:
        logger.removeHandler(handler)


def test_no_secret_in_any_log_line(
    app: OpenAPI,
    client: FlaskClient,
    accounts: dict[str, Account],
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    """Passwords, tokens, session ids and CSRF tokens never reach the log, on any path."""
    new_password = "vermilion otter sings 77"
    created_user_password = "quartz meadow lantern 19"
    browser = app.test_client()
    sign_in(browser, "nobody", "wrong-password-Zx81!")
    sign_in(browser, "clinician")
    session_id = browser.get_cookie(COOKIE).value
    csrf = csrf_from(browser)
    browser.post(
        "/me/password",
        json={"current_password": TEST_PASSWORD, "new_password": new_password},
        headers={"X-CSRF-Token": csrf},
    )
    client.post("/users", json={"username": "newbie", "role": "viewer",
                                "password": created_user_password})  # fmt: skip
    token = client.post("/tokens", json={"username": "viewer", "label": "t"}).json["token"]
    app.test_client().get("/patients", headers=bearer(token))
    app.test_client().get("/patients", headers=bearer(token + "x"))
    text = repr(log_lines())
    secrets = [TEST_PASSWORD, "wrong-password-Zx81!", new_password, created_user_password, token,
               session_id, csrf, accounts["admin"].token]  # fmt: skip
    for secret in secrets:
        assert secret not in text


def test_database_errors_do_not_carry_their_parameters(engine: Engine) -> None:
    with pytest.raises(DBAPIError) as error, engine.connect() as conn:
        conn.execute(text("SELECT no_such_column WHERE 1 = :value"), {"value": SECRET_NAME})
    assert SECRET_NAME not in str(error.value)


ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/patients", "/patients/424242", "/login", "/ui/static/style.css", "/nowhere",
     "/docs", "/openapi.json", "/me"],
)  # fmt: skip
def test_security_headers_on_every_response(
    client: FlaskClient, anonymous: FlaskClient, path: str
) -> None:
    for caller in (client, anonymous):
        response = caller.get(path)
        for name, value in ALWAYS.items():
            assert response.headers[name] == value, (path, name)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "http" not in csp  # no third-party origin
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP
        assert response.headers["Server"] == "healthcare"


def test_answers_with_patient_data_are_never_cached(client: FlaskClient) -> None:
    patient = new_patient(client)
    for path in ("/patients", f"/patients/{patient['id']}", "/ui/patients", "/audit"):
        assert client.get(path).headers["Cache-Control"] == "no-store", path


def test_request_ids_differ_between_requests_and_between_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = RequestIds()
    first, second = ids.next(), ids.next()
    assert first != second
    assert first[:16] == second[:16]
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a forked worker
    assert ids.next()[:16] != first[:16]
