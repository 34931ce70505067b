"""Reading the trail back by patient: era by era, through the indexes made for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text

from healthcare.audit import queries, trail
from healthcare.db.database import Database
from healthcare.db.models import audit_chain, audit_disclosures, audit_events

PATIENT = 7
ERA = queries.ERA_SIZE
ERA_SEEK = {"sqlite": "(<expr>=? AND patient_id=?)", "postgresql": f"(id / {ERA}) = ANY"}
DISCLOSURE_SEEK = {**ERA_SEEK, "postgresql": f"((event_id / {ERA})) = ANY"}


def _trail_across_eras(db: Database) -> list[int]:
    """Three eras of rows; patient 7 appears early in the first, not at all in the second, and
    at both ends of the third. Its ids, newest first."""
    events = []
    for position in range(2 * ERA + 300):
        mine = position in {5, 6, 2 * ERA, 2 * ERA + 1, 2 * ERA + 299}
        action = "patient.update" if position == 6 else "patient.read"
        events.append(trail.Event(action, username="reader", patient_id=PATIENT if mine else 1))
    db.write(lambda conn: trail.append(conn, events))
    return _ids_of_patient(db)


def _listings_across_eras(db: Database) -> list[int]:
    """Three eras of listings; those that returned patient 7 are early in the first and at
    both ends of the third. Their ids, newest first."""
    events, mine = [], {3, 2 * ERA + 1, 2 * ERA + 299}
    for position in range(2 * ERA + 300):
        returned = [1, PATIENT] if position in mine else [1, 2]
        events.append(trail.Event("patient.list", username="reader", disclosed=returned))
    db.write(lambda conn: trail.append(conn, events))
    db.pending_audit.flush()
    with db.engine.connect() as conn:
        last = conn.execute(select(audit_chain.c.last_id)).scalar_one()
    first = last - len(events) + 1
    return sorted((first + position for position in mine), reverse=True)


def _ids_of_patient(db: Database) -> list[int]:
    db.pending_audit.flush()
    with db.engine.connect() as conn:
        ids = conn.execute(
            select(audit_events.c.id)
            .where(audit_events.c.patient_id == PATIENT)
            .order_by(audit_events.c.id.desc())
        ).scalars()
        return list(ids)


def _every_page(client: FlaskClient, path: str) -> list[dict[str, Any]]:
    """The rows of every page of an audit listing, following ``next_before``."""
    rows: list[dict[str, Any]] = []
    before = ""
    while True:
        page = client.get(f"{path}{before}").json
        rows += page["items"]
        if page["next_before"] is None:
            return rows
        before = f"&before={page['next_before']}"


@pytest.mark.parametrize("eras_per_statement", [1, 2, queries.ERAS_PER_STATEMENT])
def test_a_patients_rows_page_across_eras(
    client_as: Callable[[str], FlaskClient],
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    eras_per_statement: int,
) -> None:
    monkeypatch.setattr(queries, "ERAS_PER_STATEMENT", eras_per_statement)
    expected = _trail_across_eras(db)
    assert [i // ERA for i in expected] == [2, 2, 2, 0, 0]  # the layout the test is about
    admin = client_as("admin")
    seen = [row["id"] for row in _every_page(admin, f"/audit?patient_id={PATIENT}&limit=2")]
    assert seen == expected
    now_expected = _ids_of_patient(db)  # the searches above are on the patient's log too
    log = admin.get(f"/patients/{PATIENT}/access-log?limit=500").json["items"]
    assert [row["id"] for row in log] == now_expected


@pytest.mark.parametrize("eras_per_statement", [1, queries.ERAS_PER_STATEMENT])
def test_the_listings_that_returned_a_patient_page_across_eras(
    client_as: Callable[[str], FlaskClient],
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    eras_per_statement: int,
) -> None:
    monkeypatch.setattr(queries, "ERAS_PER_STATEMENT", eras_per_statement)
    expected = _listings_across_eras(db)
    assert [i // ERA for i in expected] == [2, 2, 0]  # the layout the test is about
    log = _every_page(client_as("admin"), f"/patients/{PATIENT}/access-log?limit=1")
    seen = [row["id"] for row in log if row["action"] == "patient.list"]
    assert seen == expected


def test_a_far_off_cursor_starts_from_the_newest_row(
    client_as: Callable[[str], FlaskClient], db: Database
) -> None:
    expected = _trail_across_eras(db)
    page = client_as("admin").get(f"/audit?patient_id={PATIENT}&before={2**63 - 1}").json
    assert [row["id"] for row in page["items"]] == expected


def test_the_last_change_is_found_however_old(db: Database) -> None:
    ids = _trail_across_eras(db)
    change = queries.last_change(db, PATIENT)
    assert change is not None
    assert change["action"] == "patient.update"
    assert ids[-2] < ERA  # in the oldest era, behind thousands of newer rows


def _plan(db: Database, statement: object) -> str:
    compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
    with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SET enable_seqscan = off"))  # usable at all, whatever the size
            return "\n".join(conn.execute(text(f"EXPLAIN {compiled}")).scalars())
        rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
        return "\n".join(row[-1] for row in rows)


def test_patient_lookups_use_the_indexes_made_for_them(db: Database) -> None:
    """The queries must spell the era and the change condition exactly as the indexes do."""
    page = queries._filtered(queries.AuditQuery(), PATIENT).where(queries.ERA.in_([3, 2]))
    plan = _plan(db, page.limit(51))
    assert "ix_audit_events_patient_era" in plan
    assert ERA_SEEK[db.dialect] in plan  # a seek on the era, not a walk of the whole index
    c = audit_events.c
    change = select(c.id).where(c.patient_id == PATIENT, queries.IS_CHANGE).limit(1)
    assert "ix_audit_events_patient_change" in _plan(db, change)
    d = audit_disclosures.c
    listed = select(d.event_id).where(d.patient_id == PATIENT, queries.DISCLOSURE_ERA.in_([3, 2]))
    plan = _plan(db, listed.order_by(d.event_id.desc()).limit(51))
    assert "ix_audit_disclosures_patient_era" in plan
    assert DISCLOSURE_SEEK[db.dialect] in plan
