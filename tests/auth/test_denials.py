"""Anonymous refusals do not grow the audit trail without bound (issue 13, item 8); refusals
of signed-in users are all recorded."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from healthcare.db.database import Database
from tests.conftest import FakeClock, audit_rows, new_patient


def test_fifty_anonymous_requests_do_not_make_fifty_rows(
    anonymous: FlaskClient, db: Database, fake_clock: FakeClock
) -> None:
    for i in range(50):
        assert anonymous.get(f"/patients/{i + 1}?junk={'x' * i}").status_code == 401
        anonymous.get(f"/attacker-chosen-text-{i}")  # unknown paths answer 404, not a row
    rows = audit_rows(db, action="access.denied")
    assert len(rows) == 10
    assert all(row["user_id"] is None for row in rows)
    fake_clock.advance(minutes=1)
    assert anonymous.get("/patients").status_code == 401
    newest = audit_rows(db, action="access.denied")[-1]
    assert newest["detail"] == (
        "(+40 anonymous refusals not recorded singly) no credentials: GET /patients"
    )


def test_every_refusal_of_a_signed_in_user_is_recorded(
    client_as: Callable[[str], FlaskClient], db: Database
) -> None:
    viewer = client_as("viewer")
    pid = new_patient(client_as("clinician"))["id"]
    for _ in range(20):
        assert viewer.delete(f"/patients/{pid}").status_code == 403
    rows = audit_rows(db, action="access.denied")
    assert len(rows) == 20
    assert {row["username"] for row in rows} == {"viewer"}
