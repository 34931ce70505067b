"""Server-side browser sessions: the cookie holds a random id, the database holds the rest.

A session can be ended from the server at any moment (logout, a disabled user, a changed
password); it ends by itself after ``idle`` without a request and ``absolute`` after sign-in.
Before sign-in the cookie holds a random value that is never a session id, only the anchor of
the sign-in form's CSRF token; signing in always issues a fresh id (no session fixation)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from flask import Flask, Request, Response, request
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import bindparam, delete, insert, select, update
from werkzeug.datastructures import CallbackDict

from healthcare import clock
from healthcare.audit.trail import append
from healthcare.auth.access import Actor, Role
from healthcare.db.database import Database, current_database
from healthcare.db.models import user_sessions, users
from healthcare.db.raw import RawStatement

COOKIE = "healthcare_session"
MAX_COOKIE_LENGTH = 128
LOAD = RawStatement(
    select(
        user_sessions.c.user_id,
        user_sessions.c.created_at,
        user_sessions.c.last_seen_at,
        user_sessions.c.data,
        users.c.username,
        users.c.role,
        users.c.disabled_at,
        users.c.must_change_password,
    )
    .join(users, users.c.id == user_sessions.c.user_id)
    .where(user_sessions.c.id == bindparam("key"))
)


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=15)
    absolute: timedelta = timedelta(hours=12)

    @property
    def touch_every(self) -> timedelta:
        """How stale ``last_seen_at`` may get: a write per request would be wasteful, and the
        idle limit is kept to within this much (it can end a session this much early)."""
        return min(timedelta(seconds=60), self.idle / 15)


def key_of(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class ServerSession(CallbackDict, SessionMixin):  # type: ignore[type-arg]
    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        cookie: str | None = None,
        user: Actor | None = None,
        last_seen: datetime | None = None,
        ended: str | None = None,
    ) -> None:
        def on_update(session: ServerSession) -> None:
            session.modified = True

        super().__init__(data or {}, on_update)
        self.cookie = cookie  # a session id when ``user`` is set, else an anonymous anchor
        self.user = user
        self.last_seen = last_seen
        self.ended = ended  # why the session behind the cookie just ended
        self.cookie_changed = False
        self.modified = False

    @property
    def key(self) -> str | None:
        return key_of(self.cookie) if self.user and self.cookie else None

    def anchor(self) -> str:
        """The cookie value, made on first use for a visitor who has none."""
        if self.cookie is None:
            self.renew_cookie()
        return self.cookie  # type: ignore[return-value]

    def renew_cookie(self) -> str:
        self.cookie = secrets.token_urlsafe(32)
        self.cookie_changed = True
        return self.cookie


def csrf_token(secret_key: str, session: ServerSession) -> str:
    return hmac.new(secret_key.encode(), b"csrf:" + session.anchor().encode(), "sha256").hexdigest()


def csrf_valid(secret_key: str, session: ServerSession, token: str | None) -> bool:
    if not token or session.cookie is None:
        return False
    return hmac.compare_digest(csrf_token(secret_key, session), token)


def start_session(db: Database, session: ServerSession, actor: Actor) -> None:
    """Sign ``actor`` in: a new session id, the old one (if any) gone, login.success recorded."""
    old_key = session.key
    session_id = session.renew_cookie()
    now = clock.utc_now()

    def begin(conn: Any) -> None:
        if old_key:
            conn.execute(delete(user_sessions).where(user_sessions.c.id == old_key))
        conn.execute(
            insert(user_sessions).values(
                id=key_of(session_id),
                user_id=actor.user_id,
                created_at=now,
                last_seen_at=now,
                data="{}",
            )
        )
        append(conn, [actor.event("login.success")])

    db.write(begin)
    session.clear()
    session.user, session.last_seen, session.ended = actor, now, None
    session.modified = False


def end_session(db: Database, session: ServerSession, actor: Actor, reason: str) -> None:
    """End the session now (the row goes), and leave the browser an anonymous cookie."""
    key = session.key
    if key is not None:

        def finish(conn: Any) -> None:
            conn.execute(delete(user_sessions).where(user_sessions.c.id == key))
            append(conn, [actor.event("logout", detail=reason)])

        db.write(finish)
    session.clear()
    session.user, session.ended, session.modified = None, reason, False
    session.renew_cookie()


class ServerSessionInterface(SessionInterface):
    def __init__(self, policy: SessionPolicy) -> None:
        self.policy = policy

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        cookie = request.cookies.get(COOKIE) if "HTTP_COOKIE" in request.environ else None
        if not cookie or len(cookie) > MAX_COOKIE_LENGTH:
            return ServerSession()
        db = current_database()
        [rows] = db.read((LOAD, {"key": key_of(cookie)}))
        if not rows:
            return ServerSession(cookie=cookie)
        user_id, created, last_seen, data, username, role, disabled_at, change_due = rows[0]
        created, last_seen = clock.from_stored(created), clock.from_stored(last_seen)
        actor = Actor(
            user_id,
            username,
            Role(role),
            client=request.remote_addr,
            password_change_due=bool(change_due),
        )
        session = ServerSession(orjson.loads(data), cookie=cookie, user=actor, last_seen=last_seen)
        reason = self._ended_because(created, last_seen, disabled_at)  # type: ignore[arg-type]
        if reason:
            end_session(db, session, actor, reason)
        return session

    def _ended_because(
        self, created: datetime, last_seen: datetime, disabled_at: object
    ) -> str | None:
        now = clock.utc_now()
        if disabled_at is not None:
            return "user disabled"
        if now - last_seen >= self.policy.idle:
            return "idle timeout"
        if now - created >= self.policy.absolute:
            return "session time limit"
        return None

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:  # type: ignore[override]
        if session.cookie_changed:
            response.set_cookie(
                COOKIE,
                session.cookie or "",
                httponly=True,
                samesite="Lax",
                secure=request.is_secure,
                path="/",
            )
        key = session.key
        if key is None:
            return
        now = clock.utc_now()
        stale = session.last_seen is None or now - session.last_seen >= self.policy.touch_every
        if session.modified or stale:
            values: dict[str, Any] = {"last_seen_at": now}
            if session.modified:
                values["data"] = orjson.dumps(dict(session)).decode()
            current_database().write(
                lambda conn: conn.execute(
                    update(user_sessions).where(user_sessions.c.id == key).values(values)
                )
            )
