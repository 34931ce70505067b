"""Roles, what each may do, and the actor every use case is called on behalf of."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from healthcare.audit.trail import Event
from healthcare.errors import Forbidden

if TYPE_CHECKING:
    from healthcare.db.database import Database


class Role(StrEnum):
    VIEWER = "viewer"
    CLINICIAN = "clinician"
    ADMIN = "admin"


class Permission(StrEnum):
    READ_PATIENTS = "read patients"
    WRITE_PATIENTS = "change patients"
    MANAGE_DELETED = "manage deleted patients"
    MANAGE_USERS = "manage users and tokens"
    READ_AUDIT = "read the audit trail"
    BULK_TRANSFER = "import and export patients in bulk"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ_PATIENTS}),
    Role.CLINICIAN: frozenset({Permission.READ_PATIENTS, Permission.WRITE_PATIENTS}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Actor:
    """A signed-in user (through a session or a token), an operator at the command line, or
    nobody yet (``role`` None): what the audit trail records as the one acting."""

    user_id: int | None
    username: str | None
    role: Role | None
    token_label: str | None = None
    client: str | None = None
    request_id: str | None = None
    token_id: int | None = None
    # The generated first admin's password: nothing but changing it is allowed until it is.
    password_change_due: bool = False

    @classmethod
    def operator(cls) -> Actor:
        """Whoever runs the ``healthcare`` command on the server: full rights, as root has.
        Named by the process's real user id, never by LOGNAME or USER, which anyone can set."""
        return cls(None, f"operator:{_real_user()}"[:64], Role.ADMIN, client="local")

    def may(self, permission: Permission) -> bool:
        return self.role is not None and permission in GRANTS[self.role]

    def event(self, action: str, **details: Any) -> Event:
        return Event(
            action,
            user_id=self.user_id,
            username=self.username,
            token_label=self.token_label,
            token_id=self.token_id,
            client=self.client,
            request_id=self.request_id,
            **details,
        )


def _real_user() -> str:
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (a container run with --user)
        return f"uid={uid}"


def authorize(
    db: Database, actor: Actor, permission: Permission, action: str, patient_id: int | None = None
) -> None:
    """Refuse (403, audited as access.denied) unless the actor's role grants ``permission``."""
    if actor.may(permission):
        return
    db.audit_soon(
        actor.event("access.denied", outcome="denied", patient_id=patient_id, detail=action)
    )
    raise Forbidden(f"Your role ({actor.role or 'none'}) may not {permission}.")
