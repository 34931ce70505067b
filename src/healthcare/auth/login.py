"""Signing in with a password, and the brute-force brake.

Failed sign-ins are audit rows already, so the limit counts those rows: every server worker
(and every server on one PostgreSQL) sees the same count, with nothing else to run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, select

from healthcare import clock, metrics
from healthcare.audit.trail import append
from healthcare.auth.access import Actor, Role
from healthcare.auth.passwords import verify_password
from healthcare.db.database import Database
from healthcare.db.models import audit_events, users
from healthcare.errors import SignInFailed, TooManyAttempts

FAILED = "login.failure"
# A wrong current password at a password change is a guess at the password too (issue 13,
# item 7): both count against the same limits.
GUESSES = (FAILED, "user.password_change")


@dataclass(frozen=True)
class LoginPolicy:
    failures_per_account: int = 5
    failures_per_client: int = 20
    window: timedelta = timedelta(minutes=15)


def _seconds_until_allowed(
    conn: Connection, policy: LoginPolicy, username: str, client: str
) -> int:
    now = clock.utc_now()
    wait = 0.0
    for column, value, limit in (
        (audit_events.c.username, username, policy.failures_per_account),
        (audit_events.c.client, client, policy.failures_per_client),
    ):
        # The limit-th most recent failure in the window: while it is in the window, wait.
        nth = conn.execute(
            select(audit_events.c.at)
            .where(
                audit_events.c.action.in_(GUESSES),
                audit_events.c.outcome == "failure",
                column == value,
                audit_events.c.at > now - policy.window,
            )
            .order_by(audit_events.c.at.desc())
            .offset(limit - 1)
            .limit(1)
        ).scalar()
        if nth is not None:
            wait = max(wait, (clock.as_utc(nth) + policy.window - now).total_seconds())
    return math.ceil(wait)


def _too_many(wait: int) -> TooManyAttempts:
    return TooManyAttempts(
        f"Too many failed sign-ins. Try again in {math.ceil(wait / 60)} minute(s).", wait
    )


def refuse_while_throttled(db: Database, policy: LoginPolicy, actor: Actor, action: str) -> None:
    """429 (recorded as ``action``, throttled) while the actor's name or address has used up
    its failures: for a password check other than signing in."""
    with db.engine.connect() as conn:
        wait = _seconds_until_allowed(conn, policy, actor.username or "", actor.client or "-")
    if wait > 0:
        db.audit_soon(actor.event(action, outcome="throttled"))
        raise _too_many(wait)


def sign_in(
    db: Database, policy: LoginPolicy, username: str, password: str, client: str, request_id: str
) -> Actor:
    """The user these credentials belong to. Wrong credentials are recorded before the answer,
    so the next attempt, in any worker, counts them."""
    username = username.strip().lower()[:64]
    anonymous = Actor(None, username or None, None, client=client, request_id=request_id)
    with db.reading() as conn:
        wait = _seconds_until_allowed(conn, policy, username, client)
        if wait > 0:
            metrics.sign_in_failed()
            db.audit_soon(anonymous.event(FAILED, outcome="throttled"))
            raise _too_many(wait)
        user = conn.execute(
            select(
                users.c.id,
                users.c.password_hash,
                users.c.role,
                users.c.disabled_at,
                users.c.must_change_password,
            ).where(users.c.username == username)
        ).first()
    usable = user is not None and user.disabled_at is None
    if not verify_password(user.password_hash if usable else None, password):
        detail = "disabled user" if user is not None and not usable else None
        failure = anonymous.event(FAILED, outcome="failure", detail=detail)
        db.write(lambda conn: append(conn, [failure]))
        metrics.sign_in_failed()
        raise SignInFailed("The user name or password is not right.")
    return Actor(
        user.id,
        username,
        Role(user.role),
        client=client,
        request_id=request_id,
        password_change_due=bool(user.must_change_password),
    )
