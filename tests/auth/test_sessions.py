"""Browser sign-in: server-side sessions, cookie flags, fixation, CSRF, logout, timeouts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from sqlalchemy import Engine, func, select

from healthcare.auth.sessions import COOKIE
from healthcare.db.database import Database
from healthcare.db.models import user_sessions
from tests.conftest import TEST_PASSWORD, Account, FakeClock, audit_rows

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def csrf_from(client: FlaskClient, path: str | None = None) -> str:
    """The CSRF token from a page: the sign-in page, or any page once signed in."""
    if path is None:
        path = "/ui/patients" if client.get("/me").status_code == 200 else "/login"
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client: FlaskClient, username: str, password: str = TEST_PASSWORD, **extra: Any) -> Any:
    token = csrf_from(client)
    form = {"username": username, "password": password, "csrf_token": token, **extra}
    return client.post("/login", data=form)


def cookie_value(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def session_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(user_sessions)).scalar_one()


@pytest.fixture
def browser(app: OpenAPI, accounts: dict[str, Account]) -> FlaskClient:
    return app.test_client()


def test_sign_in_opens_a_session_and_lets_the_browser_in(
    browser: FlaskClient, db: Database
) -> None:
    assert browser.get("/me").status_code == 401
    response = sign_in(browser, "clinician")
    assert response.status_code == 303
    assert response.location == "/ui/patients"
    me = browser.get("/me")
    assert me.status_code == 200
    assert me.json == {"username": "clinician", "role": "clinician", "token_label": None}
    assert [r["outcome"] for r in audit_rows(db, action="login.success")] == ["success"]


def test_the_session_id_changes_at_sign_in(browser: FlaskClient, engine: Engine) -> None:
    csrf_from(browser)
    before = cookie_value(browser)
    assert before is not None
    sign_in(browser, "viewer")
    after = cookie_value(browser)
    assert after
    assert after != before
    # An attacker who planted the pre-sign-in value holds nothing.
    planted = browser.application.test_client()
    planted.set_cookie(COOKIE, before)
    assert planted.get("/me").status_code == 401
    assert session_count(engine) == 1


def test_cookie_flags(browser: FlaskClient) -> None:
    response = sign_in(browser, "viewer")
    set_cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie
    assert "Path=/" in set_cookie
    assert "Secure" not in set_cookie  # plain HTTP here: a Secure cookie would never come back


def test_cookie_is_secure_behind_a_trusted_https_proxy(
    make_app: Callable[..., OpenAPI], accounts: dict[str, Account]
) -> None:
    proxied = make_app(trusted_proxies=1, trusted_proxy_addresses="127.0.0.1").test_client()
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    token = CSRF.search(proxied.get("/login", headers=https).get_data(as_text=True)).group(1)
    response = proxied.post(
        "/login",
        data={"username": "viewer", "password": TEST_PASSWORD, "csrf_token": token},
        headers=https,
    )
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_forwarded_headers_are_ignored_unless_trusted(browser: FlaskClient, db: Database) -> None:
    spoofed = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    response = browser.get("/login", headers=spoofed)
    assert "Strict-Transport-Security" not in response.headers
    browser.get("/patients", headers=spoofed)
    [denied] = audit_rows(db, action="access.denied")
    assert denied["client"] == "127.0.0.1"


def test_trusted_proxy_supplies_the_client_address(
    make_app: Callable[..., OpenAPI], accounts: dict[str, Account]
) -> None:
    proxied = make_app(trusted_proxies=1, trusted_proxy_addresses="127.0.0.0/8")
    proxied.test_client().get("/patients", headers={"X-Forwarded-For": "203.0.113.9"})
    [denied] = audit_rows(proxied.extensions["healthcare.db"], action="access.denied")
    assert denied["client"] == "203.0.113.9"


def test_sign_in_without_a_csrf_token_is_refused(browser: FlaskClient, db: Database) -> None:
    csrf_from(browser)
    form = {"username": "viewer", "password": TEST_PASSWORD}
    response = browser.post("/login", data=form)
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)
    response = browser.post("/login", data={**form, "csrf_token": "0" * 64})
    assert response.status_code == 400
    assert browser.get("/me").status_code == 401
    assert audit_rows(db, action="login.success") == []


def test_state_changes_from_a_session_need_the_csrf_token(browser: FlaskClient) -> None:
    sign_in(browser, "clinician")
    body = {"name": "Forged Request", "age": 30}
    forged = browser.post("/patients", json=body)
    assert forged.status_code == 403
    assert "CSRF" in forged.json["detail"]
    assert browser.post("/logout").status_code == 403
    token = csrf_from(browser)
    created = browser.post("/patients", json=body, headers={"X-CSRF-Token": token})
    assert created.status_code == 201


def test_the_csrf_token_of_another_session_does_not_count(
    browser: FlaskClient, app: OpenAPI
) -> None:
    other = app.test_client()
    sign_in(other, "admin")
    foreign_token = csrf_from(other)
    sign_in(browser, "clinician")
    response = browser.post("/patients", json={"name": "X Y", "age": 3},
                            headers={"X-CSRF-Token": foreign_token})  # fmt: skip
    assert response.status_code == 403


def test_logout_ends_the_session_on_the_server(browser: FlaskClient, engine: Engine) -> None:
    sign_in(browser, "viewer")
    session_id = cookie_value(browser)
    token = csrf_from(browser)
    response = browser.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.location == "/login?reason=signed_out"
    assert session_count(engine) == 0
    replay = browser.application.test_client()
    replay.set_cookie(COOKIE, session_id)  # the old cookie, kept by an attacker
    assert replay.get("/me").status_code == 401


def test_pages_send_a_signed_out_browser_to_the_login_page(browser: FlaskClient) -> None:
    response = browser.get("/")
    assert response.status_code == 302
    assert response.location == "/login"
    sign_in(browser, "viewer")
    assert browser.get("/").location == "/ui/patients"


def test_login_redirects_only_within_the_site(browser: FlaskClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = sign_in(browser, "viewer", next=target)
        assert response.location == "/ui/patients", target
    response = sign_in(browser, "viewer", next="/docs")
    assert response.location == "/docs"


def test_idle_sessions_end(
    browser: FlaskClient, fake_clock: FakeClock, engine: Engine, db: Database
) -> None:
    sign_in(browser, "viewer")
    for _ in range(3):  # activity keeps it alive past the idle limit
        fake_clock.advance(minutes=14)
        assert browser.get("/me").status_code == 200
    fake_clock.advance(minutes=15)
    response = browser.get("/me")
    assert response.status_code == 401
    assert session_count(engine) == 0
    assert [r["detail"] for r in audit_rows(db, action="logout")] == ["idle timeout"]
    page = browser.get("/")
    assert page.location == "/login"


def test_idle_limit_is_configurable(
    make_app: Callable[..., OpenAPI], accounts: dict[str, Account], fake_clock: FakeClock
) -> None:
    browser = make_app(session_idle_minutes=2).test_client()
    sign_in(browser, "viewer")
    fake_clock.advance(minutes=1, seconds=50)
    assert browser.get("/me").status_code == 200
    fake_clock.advance(minutes=2, seconds=1)
    assert browser.get("/me").status_code == 401


def test_sessions_end_after_twelve_hours_whatever_the_activity(
    browser: FlaskClient, fake_clock: FakeClock
) -> None:
    sign_in(browser, "viewer")
    for _ in range(11 * 6):
        fake_clock.advance(minutes=10)
        assert browser.get("/me").status_code == 200
    fake_clock.advance(minutes=61)
    assert browser.get("/me").status_code == 401


def test_a_page_request_after_the_session_ended_explains_why(
    browser: FlaskClient, fake_clock: FakeClock
) -> None:
    sign_in(browser, "viewer")
    fake_clock.advance(minutes=16)
    response = browser.get("/ui/patients/1")
    assert response.status_code == 302
    assert response.location == "/login?next=/ui/patients/1&reason=ended"
    login = browser.get(response.location)
    assert "You were signed out. Sign in again to continue." in login.get_data(as_text=True)


def test_a_page_request_without_a_session_gives_no_reason(browser: FlaskClient) -> None:
    response = browser.get("/ui/patients/1")
    assert response.status_code == 302
    assert response.location == "/login?next=/ui/patients/1"
    assert "You were signed out" not in browser.get(response.location).get_data(as_text=True)


def test_disabling_a_user_ends_their_sessions_at_once(
    browser: FlaskClient, client: FlaskClient, engine: Engine
) -> None:
    sign_in(browser, "clinician")
    assert browser.get("/me").status_code == 200
    assert client.post("/users/clinician/disable").status_code == 200
    assert browser.get("/me").status_code == 401
    assert session_count(engine) == 0
    again = sign_in(browser.application.test_client(), "clinician")
    assert again.status_code == 401


def test_changing_the_password_ends_the_other_sessions(browser: FlaskClient, app: OpenAPI) -> None:
    laptop, phone = browser, app.test_client()
    sign_in(laptop, "viewer")
    sign_in(phone, "viewer")
    token = csrf_from(laptop)
    new = "a different pass phrase 31"
    response = laptop.post(
        "/me/password",
        json={"current_password": TEST_PASSWORD, "new_password": new},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 204
    assert laptop.get("/me").status_code == 200
    assert phone.get("/me").status_code == 401
    assert sign_in(app.test_client(), "viewer").status_code == 401
    assert sign_in(app.test_client(), "viewer", new).status_code == 303


def test_a_wrong_current_password_changes_nothing(client_as: Callable[..., Any]) -> None:
    viewer = client_as("viewer")
    response = viewer.post(
        "/me/password",
        json={"current_password": "wrong wrong wrong", "new_password": "a different phrase 5"},
    )
    assert response.status_code == 422
    assert "current password" in response.json["detail"]
