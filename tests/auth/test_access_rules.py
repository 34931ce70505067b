"""The actor and its grants, called directly: who may what, and what a refusal leaves behind."""

from __future__ import annotations

import os
import pwd

import pytest

from healthcare.audit.trail import SUCCESS
from healthcare.auth import access
from healthcare.auth.access import Actor, Permission, Role, authorize
from healthcare.db.database import Database
from healthcare.errors import Forbidden
from tests.conftest import audit_rows

CLINICIAN = Actor(7, "casey", Role.CLINICIAN, token_label="laptop", client="10.0.0.9",
                  request_id="req-1")  # fmt: skip


def test_the_operator_is_a_local_admin_named_after_the_system_user() -> None:
    operator = Actor.operator()
    name = pwd.getpwuid(os.getuid()).pw_name
    assert operator == Actor(None, f"operator:{name}", Role.ADMIN, client="local")


def test_a_long_system_user_name_is_cut_to_what_the_audit_trail_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(access, "_real_user", lambda: "u" * 100)
    assert Actor.operator().username == "operator:" + "u" * 55


@pytest.mark.parametrize(
    ("role", "granted"),
    [
        (None, set()),
        (Role.VIEWER, {Permission.READ_PATIENTS}),
        (Role.CLINICIAN, {Permission.READ_PATIENTS, Permission.WRITE_PATIENTS}),
        (Role.ADMIN, set(Permission)),
    ],
)
def test_each_role_may_exactly_its_grants(role: Role | None, granted: set[Permission]) -> None:
    actor = Actor(1, "someone", role)
    assert {permission for permission in Permission if actor.may(permission)} == granted


def test_an_event_carries_who_acted_and_the_details() -> None:
    event = CLINICIAN.event("patient.read", patient_id=3, detail="why")
    assert (event.action, event.outcome, event.patient_id, event.detail) == (
        "patient.read", SUCCESS, 3, "why")  # fmt: skip
    assert (event.user_id, event.username, event.token_label, event.client, event.request_id) == (
        7, "casey", "laptop", "10.0.0.9", "req-1")  # fmt: skip


def test_a_granted_permission_passes_without_an_audit_row(db: Database) -> None:
    authorize(db, CLINICIAN, Permission.WRITE_PATIENTS, "patient.create", 3)
    assert audit_rows(db) == []


def test_a_refusal_names_the_role_and_is_audited(db: Database) -> None:
    with pytest.raises(Forbidden) as refused:
        authorize(db, CLINICIAN, Permission.MANAGE_USERS, "token.create", 3)
    assert refused.value.detail == "Your role (clinician) may not manage users and tokens."
    [row] = audit_rows(db)
    assert (row["action"], row["outcome"], row["detail"], row["patient_id"]) == (
        "access.denied", "denied", "token.create", 3)  # fmt: skip
    assert (row["user_id"], row["username"], row["client"]) == (7, "casey", "10.0.0.9")


def test_a_refusal_of_nobody_says_none(db: Database) -> None:
    with pytest.raises(Forbidden, match=r"^Your role \(none\) may not read patients\.$"):
        authorize(db, Actor(None, None, None), Permission.READ_PATIENTS, "patient.list")
    [row] = audit_rows(db)
    assert (row["patient_id"], row["detail"]) == (None, "patient.list")
