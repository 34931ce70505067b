"""User accounts: create, list, disable, change role, change one's own password, first admin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from healthcare import clock
from healthcare.audit.record import audited_read, audited_write
from healthcare.audit.trail import Event, append
from healthcare.auth.access import Actor, Permission, Role, authorize
from healthcare.auth.login import LoginPolicy, refuse_while_throttled
from healthcare.auth.passwords import (
    hash_password,
    password_problem,
    random_password,
    verify_password,
)
from healthcare.db.database import Database
from healthcare.db.models import user_sessions, users
from healthcare.errors import Conflict, Invalid, NotFound

FIRST_ADMIN = "admin"
STARTUP = Actor(None, "system:first-run", Role.ADMIN, client="local")
PUBLIC = (users.c.id, users.c.username, users.c.role, users.c.created_at, users.c.disabled_at)


def user_to_api(row: Mapping[str, Any]) -> dict[str, Any]:
    disabled = row["disabled_at"]
    return {
        "id": row["id"],
        "username": row["username"],
        "role": row["role"],
        "created_at": clock.rfc3339(row["created_at"]),
        "disabled_at": clock.rfc3339(disabled) if disabled else None,
    }


def _checked_hash(password: str, username: str) -> str:
    problem = password_problem(password, username)
    if problem:
        raise Invalid(problem)
    return hash_password(password)


def _load(conn: Connection, username: str) -> dict[str, Any]:
    row = conn.execute(select(*PUBLIC).where(users.c.username == username)).mappings().first()
    if row is None:
        raise NotFound(f"No user named {username!r}.")
    return dict(row)


def _insert_user(
    conn: Connection, username: str, role: Role, password_hash: str, *, change_due: bool = False
) -> dict:
    if conn.execute(select(users.c.id).where(users.c.username == username)).first():
        raise Conflict(f"A user named {username!r} exists already.")
    now = clock.utc_now()
    values = {
        "username": username,
        "role": Role(role).value,
        "password_hash": password_hash,
        "created_at": now,
        "password_changed_at": now,
        "disabled_at": None,
    }
    user_id = conn.execute(
        insert(users).values(**values, must_change_password=change_due).returning(users.c.id)
    ).scalar_one()
    return user_to_api({**values, "id": user_id})


def create_user(db: Database, actor: Actor, username: str, role: Role, password: str) -> dict:
    authorize(db, actor, Permission.MANAGE_USERS, "user.create")
    password_hash = _checked_hash(password, username)  # slow on purpose: outside the lock
    event = actor.event("user.create", detail=f"user={username} role={role}")
    return audited_write(
        db, event, lambda conn, _event: _insert_user(conn, username, role, password_hash)
    )


def list_users(db: Database, actor: Actor) -> list[dict[str, Any]]:
    authorize(db, actor, Permission.MANAGE_USERS, "user.list")

    def read() -> list[dict[str, Any]]:
        with db.reading() as conn:
            rows = conn.execute(select(*PUBLIC).order_by(users.c.username)).mappings()
            return [user_to_api(row) for row in rows]

    return audited_read(db, actor.event("user.list"), read)


def _refuse_losing_last_admin(conn: Connection, user: Mapping[str, Any]) -> None:
    if user["role"] != Role.ADMIN or user["disabled_at"] is not None:
        return
    admins = conn.execute(
        select(func.count())
        .select_from(users)
        .where(users.c.role == Role.ADMIN.value, users.c.disabled_at.is_(None))
    ).scalar_one()
    if admins <= 1:
        raise Conflict("This is the last active admin; make another user admin first.")


def _end_sessions(conn: Connection, user_id: int, keep: str | None = None) -> None:
    statement = delete(user_sessions).where(user_sessions.c.user_id == user_id)
    if keep is not None:
        statement = statement.where(user_sessions.c.id != keep)
    conn.execute(statement)


def disable_user(db: Database, actor: Actor, username: str) -> dict[str, Any]:
    """Disable an account: its sessions end now and its tokens stop working."""
    authorize(db, actor, Permission.MANAGE_USERS, "user.disable")

    def disable(conn: Connection, _event: Event) -> dict[str, Any]:
        user = _load(conn, username)
        if user["disabled_at"] is not None:
            return user_to_api(user)
        if user["username"] == actor.username:
            raise Conflict("You cannot disable your own account.")
        _refuse_losing_last_admin(conn, user)
        user["disabled_at"] = clock.utc_now()
        conn.execute(
            update(users).where(users.c.id == user["id"]).values(disabled_at=user["disabled_at"])
        )
        _end_sessions(conn, user["id"])
        return user_to_api(user)

    disabled = audited_write(db, actor.event("user.disable", detail=f"user={username}"), disable)
    db.credentials.clear()  # this user's tokens stop here at once (elsewhere within a second)
    return disabled


def set_role(db: Database, actor: Actor, username: str, role: Role) -> dict[str, Any]:
    authorize(db, actor, Permission.MANAGE_USERS, "user.role_change")

    def change(conn: Connection, event: Event) -> dict[str, Any]:
        user = _load(conn, username)
        event.detail = f"user={username} role={user['role']}->{role}"
        if user["role"] != role:
            if role != Role.ADMIN:
                _refuse_losing_last_admin(conn, user)
            conn.execute(update(users).where(users.c.id == user["id"]).values(role=role.value))
            user["role"] = role.value
        return user_to_api(user)

    changed = audited_write(db, actor.event("user.role_change"), change)
    db.credentials.clear()
    return changed


def change_password(
    db: Database,
    actor: Actor,
    policy: LoginPolicy,
    current: str,
    new: str,
    keep_session: str | None = None,
) -> None:
    """A user changes their own password; their other sessions end. A wrong current password
    counts as a failed sign-in (the same limits, recorded before the answer)."""
    if actor.user_id is None or actor.username is None:
        raise Invalid("Only a signed-in user can change their password.")
    refuse_while_throttled(db, policy, actor, "user.password_change")
    with db.reading() as conn:
        stored = conn.execute(
            select(users.c.password_hash).where(users.c.id == actor.user_id)
        ).scalar_one()
    if not verify_password(stored, current):
        failure = actor.event("user.password_change", outcome="failure")
        db.write(lambda conn: append(conn, [failure]))
        raise Invalid("The current password is not right.")
    password_hash = _checked_hash(new, actor.username)

    def store(conn: Connection, _event: Event) -> None:
        conn.execute(
            update(users)
            .where(users.c.id == actor.user_id)
            .values(
                password_hash=password_hash,
                password_changed_at=clock.utc_now(),
                must_change_password=False,
            )
        )
        _end_sessions(conn, actor.user_id, keep=keep_session)  # type: ignore[arg-type]

    audited_write(db, actor.event("user.password_change"), store)
    db.credentials.clear()  # a forced change no longer holds this user's tokens back


def ensure_first_admin(db: Database, password: str | None) -> str | None:
    """With no users at all, create ``admin``: with ``password``, or a random one, returned so
    that it can be handed over once (and must be changed at the first sign-in). Returns None
    when there were users already."""
    with db.reading() as conn:
        if conn.execute(select(users.c.id).limit(1)).first():
            return None
    chosen = password or random_password()
    password_hash = _checked_hash(chosen, FIRST_ADMIN)
    event = STARTUP.event("user.create", detail=f"user={FIRST_ADMIN} role=admin (first run)")

    def create(conn: Connection) -> bool:
        if conn.execute(select(users.c.id).limit(1)).first():
            return False  # another process started first
        _insert_user(conn, FIRST_ADMIN, Role.ADMIN, password_hash, change_due=password is None)
        append(conn, [event])
        return True

    try:
        created = db.write(create)
    except (IntegrityError, Conflict):
        # PostgreSQL: another process inserted `admin` at the same moment (refused by the
        # unique name, or seen by the name check once that process committed).
        created = False
    return chosen if created and password is None else None
