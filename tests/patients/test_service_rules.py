"""The patient use cases called directly: what each returns, stores and audits, the version
rule, the restore window at its exact edge, and purging."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from healthcare.auth.access import Actor
from healthcare.db.database import Database
from healthcare.db.models import patients
from healthcare.errors import Conflict, Deleted, Forbidden, NotFound, VersionMismatch
from healthcare.patients import service
from healthcare.patients.schemas import (
    MergeRequest,
    PageQuery,
    PatientIn,
    PatientPatch,
    PatientQuery,
)
from tests.conftest import Account, FakeClock, audit_rows

CREATED = datetime(2026, 3, 1, 8, 0, 0, 5, tzinfo=UTC)
ROW = service.as_row({
    "id": 7, "name": "Asha Verma", "age": 30, "disease": "flu", "gender": "female",
    "date_of_birth": None, "phone": "+44 1", "email": "a@example.org", "notes": "n",
    "created_at": CREATED, "updated_at": CREATED, "version": 2, "mrn": "MRN-7",
    "family_name": "Verma", "given_names": "Asha", "address_lines": None, "city": None,
    "postal_code": None, "country": None, "identifiers": None, "merged_into": None,
})  # fmt: skip


@pytest.fixture
def admin_actor(accounts: dict[str, Account]) -> Actor:
    return accounts["admin"].actor()


@pytest.fixture
def clinician(accounts: dict[str, Account]) -> Actor:
    return accounts["clinician"].actor()


def _new(db: Database, actor: Actor, **fields: object) -> dict:
    return service.create_patient(db, actor, PatientIn(**{"name": "Asha Verma", "age": 34,
                                                         **fields}))  # fmt: skip


def _stored_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(patients)).scalar_one()


def test_a_row_is_shown_with_its_stored_age_when_no_birth_date_is_known() -> None:
    assert service.to_api(ROW) == {
        "id": 7, "mrn": "MRN-7", "name": "Asha Verma", "family_name": "Verma",
        "given_names": "Asha", "age": 30, "disease": "flu", "gender": "female",
        "date_of_birth": None, "phone": "+44 1", "email": "a@example.org", "address_lines": None,
        "city": None, "postal_code": None, "country": None, "identifiers": [], "notes": "n",
        "merged_into": None, "created_at": "2026-03-01T08:00:00.000005Z",
        "updated_at": "2026-03-01T08:00:00.000005Z", "version": 2,
    }  # fmt: skip


@pytest.mark.parametrize("born", [date(2000, 6, 15), "2000-06-15"])
def test_a_birth_date_makes_the_age_follow_the_calendar(born: date | str) -> None:
    at = service.FIELDS.index("date_of_birth")
    row = (*ROW[:at], born, *ROW[at + 1 :])
    day_before = service.to_api(row, date(2026, 6, 14))
    birthday = service.to_api(row, date(2026, 6, 15))
    assert (day_before["age"], birthday["age"]) == (25, 26)
    assert birthday["date_of_birth"] == "2000-06-15"


def test_a_deleted_row_shows_when_it_was_deleted() -> None:
    deleted = service.deleted_to_api((*ROW, CREATED + timedelta(days=1)))
    assert deleted["deleted_at"] == "2026-03-02T08:00:00.000005Z"
    assert deleted["id"] == 7


def test_creating_stores_version_one_and_audits_the_given_fields(
    db: Database, admin_actor: Actor
) -> None:
    made = _new(db, admin_actor, age=None, disease="flu", date_of_birth="1990-01-02")
    assert made["version"] == 1
    assert made["created_at"] == made["updated_at"]
    assert made["date_of_birth"] == "1990-01-02"
    assert service.get_patient(db, admin_actor, made["id"]) == made
    [row] = audit_rows(db, action="patient.create")
    assert (row["patient_id"], row["fields"]) == (made["id"], "age,date_of_birth,disease,name")


def test_an_unknown_patient_is_not_found_and_the_read_is_audited(
    db: Database, admin_actor: Actor
) -> None:
    with pytest.raises(NotFound, match=r"^No patient with id 424242\.$"):
        service.get_patient(db, admin_actor, 424242)
    [row] = audit_rows(db, action="patient.read")
    assert (row["patient_id"], row["outcome"]) == (424242, "not_found")


def test_the_fields_a_client_may_send_leave_out_the_age_when_a_birth_date_is_known() -> None:
    current = dict.fromkeys(service.WRITABLE)
    current.update(name="A B", age=20, date_of_birth=date(2001, 2, 3), notes="x")
    assert service.writable_fields(current) == {"name": "A B", "date_of_birth": "2001-02-03",
                                                "notes": "x", "identifiers": []}  # fmt: skip
    current["date_of_birth"] = None
    assert service.writable_fields(current) == {"name": "A B", "age": 20, "notes": "x",
                                                "identifiers": []}  # fmt: skip


def test_a_merge_patch_replaces_removes_and_keeps() -> None:
    current = dict.fromkeys(service.WRITABLE)
    current.update(name="A B", age=20, disease="flu", notes="keep")
    patch = PatientPatch.model_validate(
        {"disease": None, "age": None, "date_of_birth": "2001-02-03"}
    )
    merged = service.merge_patch(current, patch)
    assert merged == PatientIn(name="A B", date_of_birth="2001-02-03", notes="keep", identifiers=[])


def test_an_update_bumps_the_version_and_names_only_the_changed_fields(
    db: Database, admin_actor: Actor, fake_clock: FakeClock
) -> None:
    made = _new(db, admin_actor, disease="flu")
    changed = service.patch_patient(
        db, admin_actor, made["id"], PatientPatch(disease="cold", age=34), expected_version=1
    )
    assert (changed["version"], changed["disease"]) == (2, "cold")
    assert service.get_patient(db, admin_actor, made["id"]) == changed
    same = service.replace_patient(
        db, admin_actor, made["id"], PatientIn(name="Asha Verma", age=34, disease="cold")
    )
    assert same == changed  # nothing changed: no new version
    assert [row["fields"] for row in audit_rows(db, action="patient.update")] == ["disease", None]


def test_a_stale_version_is_refused_with_the_current_one(db: Database, admin_actor: Actor) -> None:
    made = _new(db, admin_actor)
    service.patch_patient(db, admin_actor, made["id"], PatientPatch(age=35))
    with pytest.raises(VersionMismatch) as stale:
        service.patch_patient(db, admin_actor, made["id"], PatientPatch(age=36), 1)
    assert stale.value.current_version == 2
    assert str(stale.value).startswith(f"Patient {made['id']} is at version 2, not 1: ")
    with pytest.raises(VersionMismatch):
        service.delete_patient(db, admin_actor, made["id"], 1)
    assert service.get_patient(db, admin_actor, made["id"])["age"] == 35


def test_deleting_hides_the_patient_and_restoring_brings_a_new_version(
    db: Database, admin_actor: Actor
) -> None:
    made = _new(db, admin_actor)
    service.delete_patient(db, admin_actor, made["id"], expected_version=1)
    with pytest.raises(Deleted, match=rf"^Patient {made['id']} has been deleted\.$"):
        service.get_patient(db, admin_actor, made["id"])
    [deleted] = service.list_deleted(db, admin_actor, PageQuery())["items"]
    assert (deleted["id"], deleted["version"]) == (made["id"], 2)
    with pytest.raises(Deleted, match=rf"^Patient {made['id']} has been deleted\.$"):
        service.patch_patient(db, admin_actor, made["id"], PatientPatch(age=1))
    restored = service.restore_patient(db, admin_actor, made["id"], expected_version=2)
    assert restored["version"] == 3
    assert service.get_patient(db, admin_actor, made["id"]) == restored
    with pytest.raises(Conflict, match=rf"^Patient {made['id']} is not deleted\.$"):
        service.restore_patient(db, admin_actor, made["id"])


def test_a_restore_checks_the_version_after_the_right_to_restore(
    db: Database, admin_actor: Actor, clinician: Actor
) -> None:
    made = _new(db, admin_actor)
    service.delete_patient(db, admin_actor, made["id"])
    with pytest.raises(Forbidden):
        service.restore_patient(db, clinician, made["id"], expected_version=1)
    with pytest.raises(VersionMismatch):
        service.restore_patient(db, admin_actor, made["id"], expected_version=1)


@pytest.mark.parametrize(
    ("after", "allowed"),
    [(timedelta(hours=24), True), (timedelta(hours=24, microseconds=1), False)],
)
def test_a_clinicians_undo_window_is_24_hours_to_the_microsecond(
    db: Database, clinician: Actor, fake_clock: FakeClock, after: timedelta, allowed: bool
) -> None:
    made = _new(db, clinician)
    service.delete_patient(db, clinician, made["id"])
    fake_clock.advance(microseconds=after / timedelta(microseconds=1))
    if allowed:
        assert service.restore_patient(db, clinician, made["id"])["id"] == made["id"]
    else:
        with pytest.raises(Forbidden, match="deleted yourself, within 24 hours"):
            service.restore_patient(db, clinician, made["id"])


def test_an_operator_without_an_account_restores_as_an_admin(
    db: Database, clinician: Actor
) -> None:
    made = _new(db, clinician)
    service.delete_patient(db, clinician, made["id"])
    assert service.restore_patient(db, Actor.operator(), made["id"])["version"] == 3


def test_a_clinician_without_a_user_id_may_not_restore(db: Database, clinician: Actor) -> None:
    made = _new(db, clinician)
    service.delete_patient(db, Actor(None, None, clinician.role), made["id"])
    with pytest.raises(Forbidden):
        service.restore_patient(db, Actor(None, None, clinician.role), made["id"])


def test_purging_removes_only_a_deleted_patient(
    db: Database, engine: Engine, admin_actor: Actor, clinician: Actor
) -> None:
    made = _new(db, admin_actor)
    with pytest.raises(Conflict, match="is not deleted; delete it before purging it"):
        service.purge_patient(db, admin_actor, made["id"])
    service.delete_patient(db, admin_actor, made["id"])
    with pytest.raises(Forbidden):
        service.purge_patient(db, clinician, made["id"])
    service.purge_patient(db, admin_actor, made["id"])
    assert _stored_count(engine) == 0
    with pytest.raises(NotFound):
        service.purge_patient(db, admin_actor, made["id"])
    outcomes = [row["outcome"] for row in audit_rows(db, action="patient.purge")]
    assert outcomes == ["conflict", "success", "not_found"]


def test_a_listing_page_says_its_window_and_total(db: Database, admin_actor: Actor) -> None:
    for i in range(3):
        _new(db, admin_actor, name=f"Patient {i}")
    page = service.list_patients(db, admin_actor, PatientQuery(limit=2, offset=1))
    assert (len(page["items"]), page["total"], page["limit"], page["offset"]) == (2, 3, 2, 1)
    assert service.list_patients(db, admin_actor, PatientQuery(limit=2, offset=1)) == page
    _new(db, admin_actor, name="Patient 3")
    assert service.list_patients(db, admin_actor, PatientQuery(limit=2, offset=1))["total"] == 4
    details = [row["detail"] for row in audit_rows(db, action="patient.list")]
    assert details == [None, None, None]
    service.list_deleted(db, admin_actor, PageQuery())
    assert audit_rows(db, action="patient.list")[-1]["detail"] == "deleted patients"


def test_a_viewers_changes_are_refused_and_audited_as_such(
    db: Database, admin_actor: Actor, accounts: dict[str, Account]
) -> None:
    viewer = accounts["viewer"].actor()
    pid = _new(db, admin_actor)["id"]
    with pytest.raises(Forbidden):
        _new(db, viewer)
    with pytest.raises(Forbidden):
        service.patch_patient(db, viewer, pid, PatientPatch(age=1))
    with pytest.raises(Forbidden):
        service.delete_patient(db, viewer, pid)
    denied = [(row["detail"], row["patient_id"]) for row in audit_rows(db, action="access.denied")]
    assert denied == [("patient.create", None), ("patient.update", pid), ("patient.delete", pid)]


def test_history_is_read_like_the_record_refused_and_audited_alike(
    db: Database, admin_actor: Actor, accounts: dict[str, Account]
) -> None:
    pid = _new(db, admin_actor)["id"]
    nobody, clinician = Actor(None, None, None), accounts["clinician"].actor()
    with pytest.raises(Forbidden):
        service.patient_history(db, nobody, pid)
    with pytest.raises(Forbidden):
        service.patient_version(db, nobody, pid, 1)
    denied = [(row["detail"], row["patient_id"]) for row in audit_rows(db, action="access.denied")]
    assert denied == [("patient.read", pid), ("patient.read", pid)]
    assert [v["version"] for v in service.patient_history(db, clinician, pid)["items"]] == [1]
    assert service.patient_version(db, clinician, pid, 1)["version"] == 1
    with pytest.raises(NotFound, match=rf"^Patient {pid} has no version 2\.$"):
        service.patient_version(db, clinician, pid, 2)
    reads = [(row["detail"], row["patient_id"]) for row in audit_rows(db, action="patient.read")]
    assert reads[-3:] == [("history", pid), ("history version 1", pid), ("history version 2", pid)]
    service.delete_patient(db, admin_actor, pid)
    for read in (service.patient_history, lambda *a: service.patient_version(*a, 1)):
        with pytest.raises(NotFound, match=rf"^No patient with id {pid}\.$"):
            read(db, clinician, pid)
        assert read(db, admin_actor, pid)


REFUSED_TO = {  # an entry point, the role it is refused to, and what the denial records
    "restore": (lambda db, actor, pid: service.restore_patient(db, actor, pid), "viewer",
                "patient.restore", True),
    "purge": (lambda db, actor, pid: service.purge_patient(db, actor, pid), "clinician",
              "patient.purge", True),
    "list deleted": (lambda db, actor, pid: service.list_deleted(db, actor, PageQuery()),
                     "clinician", "patient.list", False),
    "who might this be": (lambda db, actor, pid: service.find_matches(db, actor, {"name": "A"}),
                          None, "patient.match", False),
    "read": (lambda db, actor, pid: service.get_patient(db, actor, pid), None, "patient.read",
             True),
}  # fmt: skip


@pytest.mark.parametrize("entry", sorted(REFUSED_TO))
def test_each_entry_point_is_refused_without_its_right_and_audited_with_its_record(
    db: Database, admin_actor: Actor, accounts: dict[str, Account], entry: str
) -> None:
    call, role, action, names_the_record = REFUSED_TO[entry]
    pid = _new(db, admin_actor)["id"]
    service.delete_patient(db, admin_actor, pid)
    actor = accounts[role].actor() if role else Actor(None, None, None)
    with pytest.raises(Forbidden):
        call(db, actor, pid)
    denied = [(row["detail"], row["patient_id"]) for row in audit_rows(db, action="access.denied")]
    assert denied == [(action, pid if names_the_record else None)]


def test_a_merged_patient_is_not_restored_but_its_merge_undone(
    db: Database, admin_actor: Actor
) -> None:
    target, source = _new(db, admin_actor), _new(db, admin_actor, name="Asha Vrema")
    request = MergeRequest(source_id=source["id"], source_version=1, target_version=1,
                           take_from_source=[])  # fmt: skip
    service.merge_patients(db, admin_actor, target["id"], request)
    with pytest.raises(Conflict, match=r"was merged; an admin can undo the merge\.$"):
        service.restore_patient(db, admin_actor, source["id"])


def test_purging_an_unknown_patient_names_it(db: Database, admin_actor: Actor) -> None:
    with pytest.raises(NotFound, match=r"^No patient with id 424242\.$"):
        service.purge_patient(db, admin_actor, 424242)
