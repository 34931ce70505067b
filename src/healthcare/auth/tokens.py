"""API bearer tokens: random, shown once, stored as a hash, named, revocable, maybe expiring."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy import insert as sql_insert

from healthcare import clock
from healthcare.audit.record import audited_read, audited_write
from healthcare.audit.trail import Event
from healthcare.auth.access import Actor, Permission, Role, authorize
from healthcare.db.database import Database
from healthcare.db.models import api_tokens, users
from healthcare.db.raw import RawStatement
from healthcare.db.revision_cache import MISSING
from healthcare.errors import Conflict, NotFound

PREFIX = "hct_"
# A token asked for without a lifetime lasts this long (issue 13, item 11): a forgotten token
# stops working by itself. Up to 3650 days can be asked for; none lasts for ever.
DEFAULT_LIFETIME_DAYS = 90
LISTED = (
    api_tokens.c.id,
    users.c.username,
    api_tokens.c.label,
    api_tokens.c.created_at,
    api_tokens.c.expires_at,
    api_tokens.c.revoked_at,
    api_tokens.c.created_by,
)
BY_HASH = RawStatement(
    select(
        api_tokens.c.id,
        api_tokens.c.label,
        api_tokens.c.expires_at,
        api_tokens.c.revoked_at,
        users.c.id,
        users.c.username,
        users.c.role,
        users.c.disabled_at,
        users.c.must_change_password,
    )
    .join(users, users.c.id == api_tokens.c.user_id)
    .where(api_tokens.c.token_hash == bindparam("token_hash"))
)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _state(row: Any) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    expires = clock.from_stored(row["expires_at"])
    return "expired" if expires is not None and expires <= clock.utc_now() else "active"


def token_to_api(row: Any) -> dict[str, Any]:
    def moment(name: str) -> str | None:
        value = row[name]
        return clock.rfc3339(value) if value is not None else None

    return {
        "id": row["id"],
        "username": row["username"],
        "label": row["label"],
        "created_at": moment("created_at"),
        "expires_at": moment("expires_at"),
        "revoked_at": moment("revoked_at"),
        "created_by": row["created_by"],
        "state": _state(row),
    }


def create_token(
    db: Database, actor: Actor, username: str, label: str, expires_in_days: int | None = None
) -> dict[str, Any]:
    """A new token for ``username``, lasting ``expires_in_days`` (``DEFAULT_LIFETIME_DAYS``
    unless given); the returned ``token`` is the only copy there will be. A token made by
    someone else (an admin, an operator) records who made it, on the token and in the trail."""
    authorize(db, actor, Permission.MANAGE_USERS, "token.create")
    secret = PREFIX + secrets.token_urlsafe(32)
    maker = None if actor.username == username else actor.username

    def create(conn: Connection, event: Event) -> dict[str, Any]:
        user = conn.execute(
            select(users.c.id, users.c.disabled_at).where(users.c.username == username)
        ).first()
        if user is None:
            raise NotFound(f"No user named {username!r}.")
        if user.disabled_at is not None:
            raise Conflict(f"User {username!r} is disabled.")
        _refuse_a_label_in_use(conn, user.id, username, label)
        now = clock.utc_now()
        values = {
            "user_id": user.id,
            "label": label,
            "token_hash": digest(secret),
            "created_at": now,
            "expires_at": now + timedelta(days=expires_in_days or DEFAULT_LIFETIME_DAYS),
            "revoked_at": None,
            "created_by": maker,
        }
        token_id = conn.execute(
            sql_insert(api_tokens).values(values).returning(api_tokens.c.id)
        ).scalar_one()
        event.detail = f"{event.detail} id={token_id}"
        return {**token_to_api({**values, "id": token_id, "username": username}), "token": secret}

    on_behalf = f" on behalf of {username}" if maker else ""
    event = actor.event("token.create", detail=f"user={username} label={label}{on_behalf}")
    return audited_write(db, event, create)


def _refuse_a_label_in_use(conn: Connection, user_id: int, username: str, label: str) -> None:
    """Labels name a user's tokens in lists and in the trail: one token per label and user."""
    taken = conn.execute(
        select(api_tokens.c.id).where(api_tokens.c.user_id == user_id, api_tokens.c.label == label)
    ).first()
    if taken is not None:
        raise Conflict(f"User {username!r} has a token labelled {label!r} already (id {taken.id}).")


def revoke_token(db: Database, actor: Actor, token_id: int) -> dict[str, Any]:
    authorize(db, actor, Permission.MANAGE_USERS, "token.revoke")

    def revoke(conn: Connection, event: Event) -> dict[str, Any]:
        row = conn.execute(_listing().where(api_tokens.c.id == token_id)).mappings().first()
        if row is None:
            raise NotFound(f"No token with id {token_id}.")
        row = dict(row)
        event.detail = f"user={row['username']} label={row['label']} id={token_id}"
        if row["revoked_at"] is None:
            row["revoked_at"] = clock.utc_now()
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .values(revoked_at=row["revoked_at"])
            )
        return token_to_api(row)

    revoked = audited_write(db, actor.event("token.revoke"), revoke)
    db.credentials.clear()
    return revoked


def _listing() -> Any:
    return select(*LISTED).join(users, users.c.id == api_tokens.c.user_id)


def list_tokens(db: Database, actor: Actor, username: str | None = None) -> list[dict[str, Any]]:
    authorize(db, actor, Permission.MANAGE_USERS, "token.list")

    def read() -> list[dict[str, Any]]:
        statement = _listing().order_by(api_tokens.c.id)
        if username is not None:
            statement = statement.where(users.c.username == username)
        with db.reading() as conn:
            return [token_to_api(row) for row in conn.execute(statement).mappings()]

    return audited_read(db, actor.event("token.list"), read)


def actor_for_token(
    db: Database, token: str, client: str | None, request_id: str | None
) -> tuple[Actor | None, str]:
    """The actor a bearer token stands for, or None and why it does not count.

    The token's row is kept for up to a second per process (a database read per request cost
    a fifth of a read's time): a revocation, a disabled user or a new role applies at once in
    the process that made the change and within a second in every other."""
    key = digest(token)
    row = db.credentials.get(key)
    if row is MISSING:
        [rows] = db.read((BY_HASH, {"token_hash": key}))
        row = rows[0] if rows else None
        db.credentials.put(key, row)
    if row is None:
        return None, "unknown token"
    token_id, label, expires_at, revoked_at, user_id, username, role, disabled_at, due = row
    if revoked_at is not None:
        return None, f"revoked token {label!r} of {username}"
    expires = clock.from_stored(expires_at)
    if expires is not None and expires <= clock.utc_now():
        return None, f"expired token {label!r} of {username}"
    if disabled_at is not None:
        return None, f"token {label!r} of disabled user {username}"
    actor = Actor(user_id, username, Role(role), label, client, request_id, token_id, bool(due))
    return actor, "valid"
