"""Merging one record into another, field by field, and an admin's undo."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete

from healthcare.auth.access import Actor
from healthcare.db import group_commit
from healthcare.db.database import Database
from healthcare.db.models import patient_versions
from healthcare.errors import Deleted, VersionMismatch
from healthcare.patients import service
from healthcare.patients.schemas import MergeRequest, PatientIn, PatientPatch
from tests.conftest import audit_rows, new_patient

CONFIRM = "?confirm_not_duplicate=true"


@pytest.fixture
def pair(client: FlaskClient) -> tuple[dict[str, Any], dict[str, Any]]:
    survivor = new_patient(
        client, name="Asha Verma", date_of_birth="1990-03-04", age=None, phone="555 0101",
        identifiers=[{"system": "nhs", "value": "1"}],
    )  # fmt: skip
    body = {
        "name": "Asha Vrema",
        "date_of_birth": "1990-03-04",
        "phone": "555 0199",
        "email": "asha@example.org",
        "identifiers": [{"system": "other", "value": "A7"}],
    }
    response = client.post(f"/patients{CONFIRM}", json=body)
    assert response.status_code == 201
    return survivor, response.json


def _merge(client: FlaskClient, target: dict, source: dict, *fields: str) -> Any:
    body = {"source_id": source["id"], "source_version": source["version"],
            "target_version": target["version"], "take_from_source": list(fields)}  # fmt: skip
    return client.post(f"/patients/{target['id']}/merge", json=body)


def test_merge_takes_the_chosen_fields_and_both_sets_of_identifiers(
    client: FlaskClient, db: Database, pair: tuple[dict, dict]
) -> None:
    survivor, source = pair
    response = _merge(client, survivor, source, "phone", "email")
    assert response.status_code == 200
    merged = response.json
    assert (merged["name"], merged["phone"], merged["email"]) == (
        "Asha Verma", "555 0199", "asha@example.org",
    )  # fmt: skip
    assert merged["identifiers"] == [
        {"system": "nhs", "value": "1"}, {"system": "other", "value": "A7"},
    ]  # fmt: skip
    assert client.get("/patients?identifier=other|A7").json["items"][0]["id"] == survivor["id"]
    closed = client.get(f"/patients/{source['id']}")
    assert closed.status_code == 200
    assert closed.json["merged_into"] == survivor["id"]
    assert closed.headers["Link"] == f'</patients/{survivor["id"]}>; rel="replaced-by"'
    assert source["id"] not in {p["id"] for p in client.get("/patients").json["items"]}
    [row] = audit_rows(db, action="patient.merge")
    assert row["patient_id"] == survivor["id"]
    assert row["detail"] == f"merged {source['id']} into {survivor['id']}"
    history = client.get(f"/patients/{source['id']}/history").json["items"]
    assert history[0]["action"] == "patient.merge"


def test_merge_refuses_stale_versions_of_either_record(
    client: FlaskClient, pair: tuple[dict, dict]
) -> None:
    survivor, source = pair
    client.patch(f"/patients/{source['id']}", json={"notes": "changed meanwhile"})
    assert _merge(client, survivor, source).status_code == 412
    source = client.get(f"/patients/{source['id']}").json
    client.patch(f"/patients/{survivor['id']}", json={"notes": "changed meanwhile"})
    assert _merge(client, survivor, source).status_code == 412


def test_merge_refuses_itself_unknown_and_viewers(
    client_as: Callable[[str], FlaskClient], pair: tuple[dict, dict]
) -> None:
    survivor, source = pair
    clinician = client_as("clinician")
    assert _merge(clinician, survivor, survivor).status_code == 409
    assert _merge(clinician, survivor, {**source, "id": 999999}).status_code == 404
    assert _merge(client_as("viewer"), survivor, source).status_code == 403
    bad = {"source_id": source["id"], "source_version": 1, "target_version": 1,
           "take_from_source": ["mrn"]}  # fmt: skip
    assert clinician.post(f"/patients/{survivor['id']}/merge", json=bad).status_code == 422


def test_an_admin_undoes_a_merge(
    client_as: Callable[[str], FlaskClient], db: Database, pair: tuple[dict, dict]
) -> None:
    survivor, source = pair
    clinician, admin = client_as("clinician"), client_as("admin")
    assert _merge(clinician, survivor, source, "phone").status_code == 200
    assert clinician.post(f"/patients/{source['id']}/unmerge").status_code == 403
    assert clinician.post(f"/patients/{source['id']}/restore").status_code == 409
    undone = admin.post(f"/patients/{source['id']}/unmerge")
    assert undone.status_code == 200
    assert undone.json["merged_into"] is None
    assert undone.json["identifiers"] == [{"system": "other", "value": "A7"}]
    back = admin.get(f"/patients/{survivor['id']}").json
    assert (back["phone"], back["identifiers"]) == ("555 0101", [{"system": "nhs", "value": "1"}])
    assert admin.get("/patients?identifier=other|A7").json["items"][0]["id"] == source["id"]
    assert len(audit_rows(db, action="patient.unmerge")) == 1
    assert admin.post(f"/patients/{source['id']}/unmerge").status_code == 409


def test_undo_is_refused_once_the_survivor_has_changed(
    client: FlaskClient, pair: tuple[dict, dict]
) -> None:
    survivor, source = pair
    assert _merge(client, survivor, source).status_code == 200
    client.patch(f"/patients/{survivor['id']}", json={"notes": "seen today"})
    response = client.post(f"/patients/{source['id']}/unmerge")
    assert response.status_code == 409
    assert "changed since the merge" in response.json["detail"]


def test_a_merge_that_keeps_every_value_of_the_survivor_is_in_its_history_and_undone(
    client: FlaskClient, pair: tuple[dict, dict]
) -> None:
    survivor, _ = pair
    plain = client.post(f"/patients{CONFIRM}", json={"name": "Asha Verma", "age": 36}).json
    merged = _merge(client, survivor, plain)
    assert merged.status_code == 200
    assert merged.json["version"] == survivor["version"] + 1
    history = client.get(f"/patients/{survivor['id']}/history").json["items"]
    assert (history[0]["action"], history[0]["changes"]) == ("patient.merge", [])
    undone = client.post(f"/patients/{plain['id']}/unmerge")
    assert undone.status_code == 200, undone.json
    assert undone.json["merged_into"] is None
    history = client.get(f"/patients/{survivor['id']}/history").json["items"]
    assert history[0]["action"] == "patient.unmerge"


def test_undo_is_refused_once_the_survivor_took_another_merge(
    client: FlaskClient, pair: tuple[dict, dict]
) -> None:
    survivor, source = pair
    assert _merge(client, survivor, source, "phone").status_code == 200
    third = client.post(f"/patients{CONFIRM}", json={"name": "A. Verma", "age": 36}).json
    survivor = client.get(f"/patients/{survivor['id']}").json
    assert _merge(client, survivor, third).status_code == 200
    refused = client.post(f"/patients/{source['id']}/unmerge")
    assert refused.status_code == 409
    assert "changed since the merge" in refused.json["detail"]
    assert client.get(f"/patients/{survivor['id']}").json["phone"] == "555 0199"
    assert client.post(f"/patients/{third['id']}/unmerge").status_code == 200


def test_undo_needs_the_versions_from_before_the_merge(
    client: FlaskClient, db: Database, pair: tuple[dict, dict]
) -> None:
    survivor, source = pair
    assert _merge(client, survivor, source).status_code == 200
    with db.engine.begin() as conn:  # as for a record whose history began at the merge
        conn.execute(delete(patient_versions).where(patient_versions.c.version == 1))
    response = client.post(f"/patients/{source['id']}/unmerge")
    assert response.status_code == 409
    assert "no version 1" in response.json["detail"]
    assert client.get(f"/patients/{source['id']}").json["merged_into"] == survivor["id"]


def test_refused_merges_and_undos_say_why_and_are_audited_with_their_records(
    client_as: Callable[[str], FlaskClient], db: Database, pair: tuple[dict, dict]
) -> None:
    survivor, source = pair
    clinician = client_as("clinician")
    itself = _merge(clinician, survivor, survivor)
    assert itself.json["detail"] == "A patient cannot be merged into itself."
    assert _merge(client_as("viewer"), survivor, source).status_code == 403
    assert clinician.post(f"/patients/{source['id']}/unmerge").status_code == 403
    denied = [(row["detail"], row["patient_id"]) for row in audit_rows(db, action="access.denied")]
    assert denied == [("patient.merge", survivor["id"]), ("patient.unmerge", source["id"])]
    unmerged = client_as("admin").post(f"/patients/{source['id']}/unmerge")
    assert unmerged.json["detail"] == f"Patient {source['id']} is not merged."


def test_merge_and_undo_go_ahead_beside_a_third_lookalike_and_are_audited(
    client_as: Callable[[str], FlaskClient], db: Database, pair: tuple[dict, dict]
) -> None:
    """Merging is how duplicates are resolved: a third record like them must not stop it."""
    survivor, source = pair
    admin = client_as("admin")
    third = {"name": "Asha Verma", "date_of_birth": "1990-03-04", "phone": "555 0101"}
    assert admin.post(f"/patients{CONFIRM}", json=third).status_code == 201
    assert _merge(admin, survivor, source, "phone").status_code == 200
    undone = admin.post(f"/patients/{source['id']}/unmerge")
    assert undone.status_code == 200, undone.json
    assert undone.json["version"] == source["version"] + 2  # closed, then reopened
    [row] = audit_rows(db, action="patient.unmerge")
    assert (row["patient_id"], row["detail"]) == (
        source["id"], f"unmerged {source['id']} from {survivor['id']}",
    )  # fmt: skip


def test_chosen_fields_come_from_the_source_even_when_it_has_none(
    client: FlaskClient, pair: tuple[dict, dict]
) -> None:
    survivor, source = pair
    merged = _merge(client, source, survivor, "email", "date_of_birth").json
    assert merged["email"] is None  # the survivor had none: chosen, so emptied
    plain = new_patient(client, name="Ravi Kumar", age=51)
    other = client.post(f"/patients{CONFIRM}", json={"name": "Ravi Kumaar", "age": 52}).json
    kept = _merge(client, plain, other, "name").json
    assert (kept["name"], kept["age"], kept["identifiers"]) == ("Ravi Kumaar", 51, [])


def test_a_birth_date_taken_from_the_source_brings_its_age(client: FlaskClient) -> None:
    target = new_patient(client, name="Lena Ross", date_of_birth="1990-03-04", age=None)
    body = {"name": "Lena Ross", "date_of_birth": "1960-03-04", "phone": "555 0300"}
    source = client.post(f"/patients{CONFIRM}", json=body).json
    merged = _merge(client, target, source, "date_of_birth").json
    assert (merged["date_of_birth"], merged["age"]) == ("1960-03-04", source["age"])


def test_a_birth_date_taken_by_a_record_known_only_by_age_replaces_the_age(
    client: FlaskClient,
) -> None:
    target = new_patient(client, name="Omar Haddad", age=40)
    body = {"name": "Omar Hadad", "date_of_birth": "1960-03-04", "phone": "555 0400"}
    source = client.post(f"/patients{CONFIRM}", json=body).json
    merged = _merge(client, target, source, "date_of_birth")
    assert merged.status_code == 200, merged.json
    assert (merged.json["date_of_birth"], merged.json["age"]) == ("1960-03-04", source["age"])


def test_a_merge_and_an_edit_of_its_source_in_another_process_do_not_deadlock(
    db: Database, make_app: Callable[..., Any], admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a merge locks the survivor's blocks before it closes the source row, as
    every change takes blocks before rows. An edit of the source in another server process
    then waits for the merge and is refused as stale; with the blocks taken after the row,
    the two deadlocked (one of them answered 500 until deadlocked transactions ran again)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no two transactions wait on each other")
    other_process = make_app().extensions["healthcare.db"]
    target = service.create_patient(db, admin, PatientIn.model_validate(
        {"name": "Asha Verma", "date_of_birth": "1990-03-04",
         "identifiers": [{"system": "https://example.org/nhs", "value": "1"}]}))  # fmt: skip
    source = service.create_patient(db, admin, PatientIn.model_validate(
        {"name": "Asha Vrema", "date_of_birth": "1990-03-04",
         "identifiers": [{"system": "https://example.org/other", "value": "A7"}]}),
        confirm_not_duplicate=True)  # fmt: skip
    closed = threading.Event()
    close_as_merged = service._close_as_merged

    def close_then_linger(*args: Any, **kwargs: Any) -> None:
        close_as_merged(*args, **kwargs)  # the source's row is locked from here to the commit
        closed.set()
        time.sleep(1.0)  # the edit takes its blocks meanwhile

    monkeypatch.setattr(service, "_close_as_merged", close_then_linger)
    deadlocks: list[Exception] = []
    deadlocked = group_commit._deadlocked

    def noting_deadlocks(error: Exception) -> bool:
        if deadlocked(error):
            deadlocks.append(error)
        return deadlocked(error)

    monkeypatch.setattr(group_commit, "_deadlocked", noting_deadlocks)
    edit: list[BaseException] = []

    def edit_the_source() -> None:
        closed.wait(10)
        patch = PatientPatch.model_validate({"phone": "555 0199"})
        try:
            service.patch_patient(other_process, admin, source["id"], patch,
                                  confirm_not_duplicate=True)  # fmt: skip
        except Exception as exc:
            edit.append(exc)

    editor = threading.Thread(target=edit_the_source)
    editor.start()
    merge = MergeRequest(source_id=source["id"], source_version=1, target_version=1,
                         take_from_source=[])  # fmt: skip
    survivor = service.merge_patients(db, admin, target["id"], merge)
    editor.join(30)
    assert survivor["id"] == target["id"]
    assert [type(exc) for exc in edit] in ([Deleted], [VersionMismatch])
    assert deadlocks == []
