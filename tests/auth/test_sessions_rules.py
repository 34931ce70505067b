"""Server-side sessions, rule by rule: the exact moments a session ends, what signing in and out
do to the rows and the audit trail, the CSRF token, and how often the session row is touched."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from flask_openapi3 import OpenAPI
from sqlalchemy import Engine, insert, select

from healthcare.auth.access import Actor, Role
from healthcare.auth.sessions import (
    COOKIE,
    MAX_COOKIE_LENGTH,
    ServerSession,
    ServerSessionInterface,
    SessionPolicy,
    csrf_token,
    csrf_valid,
    end_session,
    key_of,
    start_session,
)
from healthcare.clock import as_utc
from healthcare.db.database import Database
from healthcare.db.models import user_sessions
from tests.auth.test_sessions import cookie_value, csrf_from, sign_in
from tests.conftest import TEST_SECRET, Account, FakeClock, audit_rows

POLICY = SessionPolicy(idle=timedelta(minutes=15), absolute=timedelta(hours=12))


def _rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(select(user_sessions)).mappings()]


@pytest.mark.parametrize(
    ("idle", "touch_every"),
    [(timedelta(minutes=15), timedelta(seconds=60)), (timedelta(minutes=5), timedelta(seconds=20))],
)
def test_the_row_is_touched_at_most_a_fifteenth_of_the_idle_limit_apart(
    idle: timedelta, touch_every: timedelta
) -> None:
    assert SessionPolicy(idle=idle).touch_every == touch_every


def test_a_session_key_is_the_sha256_of_its_id() -> None:
    assert key_of("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_only_a_signed_in_session_has_a_key() -> None:
    actor = Actor(1, "casey", Role.VIEWER)
    assert ServerSession(cookie="anchor").key is None
    assert ServerSession(user=actor).key is None
    assert ServerSession(cookie="id", user=actor).key == key_of("id")


def test_a_session_holds_what_it_was_opened_with() -> None:
    session = ServerSession({"next": "/docs"}, cookie="id", ended="idle timeout")
    assert (dict(session), session.ended, session.modified) == ({"next": "/docs"}, "idle timeout",
                                                                False)  # fmt: skip


def test_a_visitor_gets_one_anchor_and_a_fresh_one_only_when_renewed() -> None:
    session = ServerSession()
    assert (session.cookie, session.cookie_changed, session.modified) == (None, False, False)
    anchor = session.anchor()
    assert len(anchor) == 43  # 32 random bytes, URL-safe base64
    assert session.anchor() == anchor
    assert session.cookie_changed
    assert session.renew_cookie() != anchor
    session["next"] = "/docs"
    assert session.modified


def test_the_csrf_token_is_an_hmac_of_the_anchor() -> None:
    session = ServerSession(cookie="anchor-value")
    expected = hmac.new(TEST_SECRET.encode(), b"csrf:anchor-value", hashlib.sha256).hexdigest()
    assert csrf_token(TEST_SECRET, session) == expected
    assert csrf_valid(TEST_SECRET, session, expected)
    assert not csrf_valid(TEST_SECRET + "x", session, expected)
    assert not csrf_valid(TEST_SECRET, session, expected[:-1] + "0")
    assert not csrf_valid(TEST_SECRET, session, "")
    assert not csrf_valid(TEST_SECRET, session, None)
    assert not csrf_valid(TEST_SECRET, ServerSession(), csrf_token(TEST_SECRET, ServerSession()))


@pytest.mark.parametrize(
    ("since_sign_in", "since_seen", "disabled", "reason"),
    [
        (timedelta(minutes=20), timedelta(minutes=15) - timedelta(microseconds=1), None, None),
        (timedelta(minutes=20), timedelta(minutes=15), None, "idle timeout"),
        (timedelta(hours=12) - timedelta(microseconds=1), timedelta(0), None, None),
        (timedelta(hours=12), timedelta(0), None, "session time limit"),
        (timedelta(hours=13), timedelta(hours=1), None, "idle timeout"),
        (timedelta(0), timedelta(0), datetime(2026, 1, 1, tzinfo=UTC), "user disabled"),
    ],
)
def test_a_session_ends_at_exactly_its_limits(
    fake_clock: FakeClock,
    since_sign_in: timedelta,
    since_seen: timedelta,
    disabled: datetime | None,
    reason: str | None,
) -> None:
    now = fake_clock.now
    ended = ServerSessionInterface(POLICY)._ended_because(
        now - since_sign_in, now - since_seen, disabled
    )
    assert ended == reason


def test_signing_in_replaces_the_old_session(
    db: Database, engine: Engine, accounts: dict[str, Account], fake_clock: FakeClock
) -> None:
    actor = Actor(accounts["viewer"].user_id, "viewer", Role.VIEWER, client="10.0.0.1")
    session = ServerSession({"next": "/docs"}, cookie="old-id", user=actor)
    with engine.begin() as conn:
        conn.execute(insert(user_sessions).values(
            id=key_of("old-id"), user_id=actor.user_id, created_at=fake_clock.now,
            last_seen_at=fake_clock.now, data="{}",
        ))  # fmt: skip
    fake_clock.advance(minutes=1)
    start_session(db, session, actor)
    [row] = _rows(engine)
    assert row["id"] == key_of(session.cookie) != key_of("old-id")
    assert (row["user_id"], row["data"]) == (actor.user_id, "{}")
    assert as_utc(row["created_at"]) == as_utc(row["last_seen_at"]) == fake_clock.now
    assert (dict(session), session.user, session.last_seen) == ({}, actor, fake_clock.now)
    assert (session.ended, session.modified, session.cookie_changed) == (None, False, True)
    [audited] = audit_rows(db, action="login.success")
    assert (audited["user_id"], audited["client"]) == (actor.user_id, "10.0.0.1")


def test_signing_out_removes_the_row_and_leaves_an_anonymous_cookie(
    db: Database, engine: Engine, accounts: dict[str, Account]
) -> None:
    actor = Actor(accounts["viewer"].user_id, "viewer", Role.VIEWER)
    session = ServerSession()
    start_session(db, session, actor)
    signed_in_cookie = session.cookie
    session["draft"] = "x"
    end_session(db, session, actor, "signed out")
    assert _rows(engine) == []
    assert (dict(session), session.user, session.ended) == ({}, None, "signed out")
    assert not session.modified
    assert session.cookie not in (None, signed_in_cookie)
    assert session.key is None
    [audited] = audit_rows(db, action="logout")
    assert (audited["user_id"], audited["detail"]) == (actor.user_id, "signed out")


def test_ending_an_anonymous_session_records_nothing(db: Database) -> None:
    session = ServerSession(cookie="anchor")
    end_session(db, session, Actor(None, None, None), "idle timeout")
    assert session.cookie != "anchor"
    assert session.ended == "idle timeout"
    assert audit_rows(db, action="logout") == []


@pytest.mark.parametrize(("length", "signed_in"), [(MAX_COOKIE_LENGTH, True),
                                                   (MAX_COOKIE_LENGTH + 1, False)])  # fmt: skip
def test_a_cookie_longer_than_the_limit_is_not_looked_up(
    app: OpenAPI, engine: Engine, accounts: dict[str, Account], length: int, signed_in: bool
) -> None:
    cookie = "c" * length
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(user_sessions).values(
            id=key_of(cookie), user_id=accounts["viewer"].user_id, created_at=now,
            last_seen_at=now, data="{}",
        ))  # fmt: skip
    browser = app.test_client()
    browser.set_cookie(COOKIE, cookie)
    assert (browser.get("/me").status_code == 200) is signed_in


@pytest.mark.usefixtures("accounts")
def test_requests_touch_the_row_once_a_minute_and_save_changed_data(
    app: OpenAPI, engine: Engine, fake_clock: FakeClock
) -> None:
    browser = app.test_client()
    sign_in(browser, "viewer")
    [signed_in] = _rows(engine)
    fake_clock.advance(seconds=59)
    assert browser.get("/me").status_code == 200
    assert _rows(engine) == [signed_in]
    fake_clock.advance(seconds=1)
    assert browser.get("/me").status_code == 200
    [touched] = _rows(engine)
    assert as_utc(touched["last_seen_at"]) == fake_clock.now
    assert touched["data"] == signed_in["data"]


@pytest.mark.usefixtures("accounts")
def test_the_session_cookie_is_set_only_when_it_changes(app: OpenAPI) -> None:
    browser = app.test_client()
    first = browser.get("/login")
    assert first.headers["Set-Cookie"].startswith(f"{COOKIE}={cookie_value(browser)};")
    assert "Set-Cookie" not in browser.get("/login").headers
    token = csrf_from(browser)
    signed_in = browser.post("/login", data={"username": "viewer", "password": "x" * 12,
                                             "csrf_token": token})  # fmt: skip
    assert "Set-Cookie" not in signed_in.headers  # a failed sign-in keeps the anchor
