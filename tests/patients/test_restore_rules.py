"""Who may undo a delete: an admin any; a clinician only their own, within the window."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from sqlalchemy import update

from healthcare.clock import utc_now
from healthcare.db.database import Database
from healthcare.db.models import patients
from healthcare.patients.service import OWN_DELETE_RESTORE_WINDOW
from tests.conftest import Account, FakeClock, audit_rows, new_patient


def _deleted_by(deleter: FlaskClient, creator: FlaskClient) -> int:
    patient = new_patient(creator)
    assert deleter.delete(f"/patients/{patient['id']}").status_code == 204
    return patient["id"]


def test_a_clinician_may_undo_their_own_delete(client_as: Callable[[str], FlaskClient]) -> None:
    clinician = client_as("clinician")
    pid = _deleted_by(clinician, clinician)
    assert clinician.post(f"/patients/{pid}/restore").status_code == 200


def test_a_clinician_may_not_restore_a_patient_someone_else_deleted(
    client_as: Callable[[str], FlaskClient], db: Database, accounts: dict[str, Account]
) -> None:
    clinician, admin = client_as("clinician"), client_as("admin")
    pid = _deleted_by(admin, clinician)
    refused = clinician.post(f"/patients/{pid}/restore")
    assert refused.status_code == 403
    assert "Only an admin" in refused.json["detail"]
    assert admin.get(f"/patients/{pid}").status_code == 404
    [row] = audit_rows(db, action="patient.restore")
    assert (row["outcome"], row["user_id"]) == ("denied", accounts["clinician"].user_id)
    assert admin.post(f"/patients/{pid}/restore").status_code == 200


def test_a_clinicians_undo_ends_with_the_window(
    client_as: Callable[[str], FlaskClient], fake_clock: FakeClock
) -> None:
    clinician = client_as("clinician")
    pid = _deleted_by(clinician, clinician)
    fake_clock.advance(seconds=OWN_DELETE_RESTORE_WINDOW.total_seconds() + 1)
    assert clinician.post(f"/patients/{pid}/restore").status_code == 403
    assert client_as("admin").post(f"/patients/{pid}/restore").status_code == 200


def test_a_clinician_may_not_restore_after_a_restore_and_delete_by_another(
    client_as: Callable[[str], FlaskClient],
) -> None:
    clinician, admin = client_as("clinician"), client_as("admin")
    pid = _deleted_by(clinician, clinician)
    assert admin.post(f"/patients/{pid}/restore").status_code == 200
    assert admin.delete(f"/patients/{pid}").status_code == 204
    assert clinician.post(f"/patients/{pid}/restore").status_code == 403


def test_a_viewer_may_not_restore_at_all(client_as: Callable[[str], FlaskClient]) -> None:
    pid = _deleted_by(client_as("admin"), client_as("admin"))
    assert client_as("viewer").post(f"/patients/{pid}/restore").status_code == 403


def test_a_delete_the_trail_does_not_show_is_an_admins_to_undo(
    client_as: Callable[[str], FlaskClient], db: Database
) -> None:
    """Deleted outside the service (no audit row says by whom): no clinician's undo."""
    clinician = client_as("clinician")
    pid = new_patient(clinician)["id"]
    with db.engine.begin() as conn:
        conn.execute(update(patients).where(patients.c.id == pid).values(deleted_at=utc_now()))
    assert clinician.post(f"/patients/{pid}/restore").status_code == 403
    assert client_as("admin").post(f"/patients/{pid}/restore").status_code == 200
