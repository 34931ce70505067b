"""The audit trail: a row for every access, written with the change, chained, append-only."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from healthcare.audit import record, trail
from healthcare.auth.access import Actor
from healthcare.cli import main
from healthcare.db.database import Database
from healthcare.db.models import audit_events, patients
from healthcare.patients import service
from healthcare.patients.schemas import PatientIn
from tests.conftest import Account, audit_guard_lifted, audit_rows, new_patient, wait_until


def actions(db: Database) -> list[tuple[str, str, int | None]]:
    return [(r["action"], r["outcome"], r["patient_id"]) for r in audit_rows(db)]


def test_a_patient_lifecycle_leaves_a_row_per_access(
    client_as: Callable[[str], FlaskClient], db: Database, runner: CliRunner
) -> None:
    clinician, admin = client_as("clinician"), client_as("admin")
    pid = new_patient(clinician, name="Audit Trail", disease="flu")["id"]
    clinician.get(f"/patients/{pid}")
    clinician.get("/patients?q=audit")
    clinician.patch(f"/patients/{pid}", json={"disease": "cold", "phone": "+1 555 0100"})
    clinician.delete(f"/patients/{pid}")
    clinician.post(f"/patients/{pid}/restore")
    clinician.delete(f"/patients/{pid}")
    admin.get("/patients/deleted")
    db.pending_audit.flush()  # the purge below comes from another process, the CLI
    assert runner.invoke(main, ["patients", "purge", str(pid), "--yes"]).exit_code == 0
    assert actions(db) == [
        ("patient.create", "success", pid),
        ("patient.read", "success", pid),
        ("patient.list", "success", None),
        ("patient.update", "success", pid),
        ("patient.delete", "success", pid),
        ("patient.restore", "success", pid),
        ("patient.delete", "success", pid),
        ("patient.list", "success", None),
        ("patient.purge", "success", pid),
    ]
    rows = audit_rows(db)
    assert rows[0]["fields"] == "age,disease,name"
    assert rows[3]["fields"] == "disease,phone"  # the names of what changed, never the values
    assert {r["username"] for r in rows[:7]} == {"clinician"}
    assert rows[0]["token_label"] == "tests"
    assert rows[0]["client"] == "127.0.0.1"
    assert rows[7]["detail"] == "deleted patients"
    assert rows[8]["username"].startswith("operator:")
    assert all(r["request_id"] for r in rows[:8])


def test_refusals_are_recorded_with_their_outcome(
    client_as: Callable[[str], FlaskClient], db: Database
) -> None:
    viewer, clinician = client_as("viewer"), client_as("clinician")
    pid = new_patient(clinician)["id"]
    viewer.delete(f"/patients/{pid}")
    clinician.get("/patients/999999")
    clinician.put(f"/patients/{pid}", json={"name": "A B", "age": 3}, headers={"If-Match": '"9"'})
    clinician.post(f"/patients/{pid}/restore")
    assert actions(db)[1:] == [
        ("access.denied", "denied", pid),
        ("patient.read", "not_found", 999999),
        ("patient.update", "stale", pid),
        ("patient.restore", "conflict", pid),
    ]
    assert audit_rows(db)[1]["detail"] == "patient.delete"


def test_a_change_and_its_audit_row_commit_together(
    client: FlaskClient, db: Database, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_append(conn: Connection, events: Any) -> None:
        raise RuntimeError("the audit write failed")

    monkeypatch.setattr(service, "append", failing_append)  # creates: service.create_each
    response = client.post("/patients", json={"name": "Never Stored", "age": 50})
    assert response.status_code == 500
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(patients)).scalar_one() == 0
    monkeypatch.undo()
    assert [(a, o) for a, o, _ in actions(db)] == [("patient.create", "error")]


def test_an_update_and_its_audit_row_commit_together(
    client: FlaskClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient = new_patient(client, name="Kept As It Was", age=50)

    def failing_append(conn: Connection, events: Any) -> None:
        raise RuntimeError("the audit write failed")

    monkeypatch.setattr(record, "append", failing_append)  # every change but a create
    response = client.patch(f"/patients/{patient['id']}", json={"age": 51})
    assert response.status_code == 500
    monkeypatch.undo()
    assert client.get(f"/patients/{patient['id']}").json["age"] == 50
    assert ("patient.update", "error") in [(a, o) for a, o, _ in actions(db)]


def test_a_no_op_update_is_recorded_without_fields(client: FlaskClient, db: Database) -> None:
    patient = new_patient(client)
    client.patch(f"/patients/{patient['id']}", json={"age": patient["age"]})
    [update] = audit_rows(db, action="patient.update")
    assert update["fields"] is None


def test_the_chain_verifies(client: FlaskClient, db: Database, runner: CliRunner) -> None:
    for i in range(5):
        new_patient(client, name=f"Chained {i}")
    client.get("/patients")
    db.pending_audit.flush()
    report = trail.verify(db.engine)
    assert report.intact
    assert report.rows == 6
    result = runner.invoke(main, ["audit", "verify"])
    assert result.exit_code == 0
    assert "intact: 6 rows" in result.output


def _chain_of(client: FlaskClient, db: Database, count: int) -> None:
    for i in range(count):
        new_patient(client, name=f"Chained {i}")
    db.pending_audit.flush()


@pytest.mark.parametrize(
    ("tamper", "broken_at"),
    [
        ("UPDATE audit_events SET username = 'someone else' WHERE id = 3", 3),
        ("UPDATE audit_events SET outcome = 'denied' WHERE id = 5", 5),
        ("DELETE FROM audit_events WHERE id = 2", 2),
        ("DELETE FROM audit_events WHERE id >= 4", 4),
    ],
)
def test_verify_names_the_first_tampered_row(
    client: FlaskClient, db: Database, runner: CliRunner, tamper: str, broken_at: int
) -> None:
    _chain_of(client, db, 5)
    with audit_guard_lifted(db.engine) as conn:
        conn.execute(text(tamper))
    report = trail.verify(db.engine)
    assert report.broken_at == broken_at
    result = runner.invoke(main, ["audit", "verify"])
    assert result.exit_code == 1
    assert f"BROKEN at row {broken_at}" in result.output


def test_the_hashed_payload_is_the_one_existing_trails_were_written_with() -> None:
    """Rows written by earlier versions must keep verifying: what is hashed, and how, is fixed."""
    event = trail.Event(
        "patient.update",
        user_id=3,
        username="clinician",
        token_label="lab",
        client="10.0.0.1",
        request_id="r" * 32,
        patient_id=42,
        fields=["name", "age"],
        detail="x",
        at=datetime(2026, 11, 27, 7, 30, 0, 123456, tzinfo=UTC),
    )
    assert trail.row_hash(trail.GENESIS_HASH, 1, event.values()) == (
        "079949c97805b1e4bd170fec47ba30227e6dcb52068917650a3870a20a1ac6c3"
    )


def test_a_rewritten_hash_does_not_hide_an_edit(client: FlaskClient, db: Database) -> None:
    """Recomputing the edited row's own hash (even with the audit key) breaks the link to the
    next row instead."""
    _chain_of(client, db, 4)
    with db.engine.connect() as conn:
        previous = conn.execute(select(audit_events.c.hash).where(audit_events.c.id == 1)).scalar()
        row = conn.execute(select(audit_events).where(audit_events.c.id == 2)).mappings().one()
    forged = {**row, "username": "someone else"}
    with audit_guard_lifted(db.engine) as conn:
        conn.execute(
            audit_events.update()
            .where(audit_events.c.id == 2)
            .values(
                username="someone else",
                hash=trail.row_hash(
                    previous, 2, trail.stored_values(forged), trail.key_for(db.engine)
                ),
            )
        )
    assert trail.verify(db.engine).broken_at == 3


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET outcome = 'success'", "DELETE FROM audit_events"],
)
def test_the_database_refuses_to_change_audit_rows(
    client: FlaskClient, db: Database, statement: str
) -> None:
    _chain_of(client, db, 1)
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text(statement))
    assert len(audit_rows(db)) == 1


def test_postgresql_refuses_to_truncate_the_audit_trail(client: FlaskClient, db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's; SQLite has only DELETE, refused above")
    _chain_of(client, db, 1)
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_events"))
    assert len(audit_rows(db)) == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_disclosures SET patient_id = 0",
        "DELETE FROM audit_disclosures",
        "TRUNCATE audit_disclosures",
    ],
)
def test_the_database_refuses_to_change_the_patients_a_listing_disclosed(
    client: FlaskClient, db: Database, statement: str
) -> None:
    if statement.startswith("TRUNCATE") and db.dialect != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's; SQLite has only DELETE, refused above")
    new_patient(client, name="Listed Person")
    client.get("/patients")
    db.pending_audit.flush()
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text(statement))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_disclosures")).scalar() == 1


def test_audit_search_filters_and_pages(
    client_as: Callable[[str], FlaskClient], db: Database
) -> None:
    clinician, admin = client_as("clinician"), client_as("admin")
    first = new_patient(clinician, name="First One")["id"]
    second = new_patient(clinician, name="Second One")["id"]
    for _ in range(3):
        clinician.get(f"/patients/{first}")
    admin.get(f"/patients/{second}")
    by_patient = admin.get(f"/audit?patient_id={first}").json["items"]
    assert [e["action"] for e in by_patient] == ["patient.read"] * 3 + ["patient.create"]
    by_user = admin.get("/audit?username=ADMIN&action=patient.*").json["items"]
    assert [(e["action"], e["patient_id"]) for e in by_user] == [("patient.read", second)]
    reads = admin.get("/audit?action=patient.read&limit=2").json
    assert len(reads["items"]) == 2
    more = admin.get(f"/audit?action=patient.read&limit=2&before={reads['next_before']}").json
    assert len(more["items"]) == 2
    assert more["next_before"] is None
    assert {e["id"] for e in reads["items"]}.isdisjoint(e["id"] for e in more["items"])
    newest = reads["items"][0]["at"]
    later = admin.get("/audit", query_string={"since": newest}).json["items"]
    assert all(e["at"] >= newest for e in later)
    earlier = admin.get("/audit", query_string={"until": newest, "action": "patient.read"})
    assert newest not in {e["at"] for e in earlier.json["items"]}


@pytest.mark.parametrize(
    "query",
    ["action=patient.", "action=DROP TABLE", "since=yesterday", "since=2026-01-01T00:00:00",
     "limit=0", "limit=501", "before=0", "patient_id=-1", "colour=red"],
)  # fmt: skip
def test_audit_search_refuses_bad_filters(client: FlaskClient, query: str) -> None:
    response = client.get(f"/audit?{query}")
    assert response.status_code == 422, query


def test_a_patients_access_log(client_as: Callable[[str], FlaskClient], db: Database) -> None:
    clinician, viewer, admin = client_as("clinician"), client_as("viewer"), client_as("admin")
    pid = new_patient(clinician)["id"]
    other = new_patient(clinician, name="Someone Else")["id"]
    viewer.get(f"/patients/{pid}")
    clinician.patch(f"/patients/{pid}", json={"age": 35})
    viewer.get(f"/patients/{other}")
    log = admin.get(f"/patients/{pid}/access-log").json["items"]
    assert [(e["username"], e["action"]) for e in log] == [
        ("clinician", "patient.update"),
        ("viewer", "patient.read"),
        ("clinician", "patient.create"),
    ]
    assert log[0]["fields"] == ["age"]
    assert viewer.get(f"/patients/{pid}/access-log").status_code == 403
    assert [r["action"] for r in audit_rows(db, patient_id=pid)][-2:] == [
        "audit.read",
        "access.denied",
    ]


def test_export_writes_json_lines_since_a_time(
    client: FlaskClient, db: Database, runner: CliRunner
) -> None:
    _chain_of(client, db, 3)
    everything = runner.invoke(main, ["audit", "export"])
    assert everything.exit_code == 0
    rows = [json.loads(line) for line in everything.stdout.splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert set(rows[0]) >= {"at", "username", "action", "patient_id", "outcome", "hash"}
    future = runner.invoke(main, ["audit", "export", "--since", "2999-01-01"])
    assert future.stdout == ""
    bad = runner.invoke(main, ["audit", "export", "--since", "soon"])
    assert bad.exit_code == 2


def test_read_events_reach_the_table_within_the_flush_delay(
    client: FlaskClient, db: Database
) -> None:
    """With the default delay (250 ms) and no one asking for a flush; 2 s leaves room for a
    busy machine, and is well short of a delay that would leave reads unrecorded for long."""
    pid = new_patient(client)["id"]
    client.get(f"/patients/{pid}")

    def reads() -> int:
        with db.engine.connect() as conn:
            return conn.execute(
                select(func.count()).where(audit_events.c.action == "patient.read")
            ).scalar_one()

    assert wait_until(reads, timeout=2.0, what="the read's audit row") == 1


def test_concurrent_readers_and_writers_keep_one_unbroken_chain(
    client: FlaskClient, db: Database
) -> None:
    pid = new_patient(client)["id"]

    def work(i: int) -> int:
        worker = client.application.test_client()
        worker.environ_base.update(client.environ_base)
        if i % 4 == 0:
            return worker.patch(f"/patients/{pid}", json={"age": i % 100}).status_code
        return worker.get(f"/patients/{pid}").status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(work, range(200)))
    assert set(statuses) == {200}
    db.pending_audit.flush()
    report = trail.verify(db.engine)
    assert report.intact
    assert report.rows == 201


def test_any_text_a_caller_sends_can_be_recorded(db: Database) -> None:
    """A NUL byte (PostgreSQL refuses those in text) or an overlong name must not stop an
    audit row from being written, or every later write that carries it."""
    event = trail.Event(
        "login.failure", outcome="failure", username="evil\x00name" * 20, detail="x\x00" * 300
    )
    db.write(lambda conn: trail.append(conn, [event]))
    [row] = audit_rows(db)
    assert "\x00" not in row["username"]
    assert len(row["username"]) == 64
    assert len(row["detail"]) == 200
    assert trail.verify(db.engine).intact


def test_audit_search_refuses_control_characters(client: FlaskClient) -> None:
    assert client.get("/audit", query_string={"username": "ad\x00min"}).status_code == 422


def test_listings_and_searches_show_in_the_access_log_of_each_patient_they_returned(
    client_as: Callable[[str], FlaskClient],
) -> None:
    clinician, viewer, admin = client_as("clinician"), client_as("viewer"), client_as("admin")
    found = new_patient(clinician, name="Listed Person")["id"]
    unseen = new_patient(clinician, name="Other Person")["id"]
    assert viewer.get("/patients?q=listed").json["total"] == 1
    assert viewer.get("/patients?limit=1&offset=0&sort=id&q=person").status_code == 200
    log = admin.get(f"/patients/{found}/access-log").json["items"]
    assert [(e["username"], e["action"]) for e in log][:2] == [
        ("viewer", "patient.list"),
        ("viewer", "patient.list"),
    ]
    other_log = admin.get(f"/patients/{unseen}/access-log").json["items"]
    assert [e["action"] for e in other_log] == ["patient.create"]


def test_a_listing_of_deleted_patients_shows_in_each_ones_access_log(
    client_as: Callable[[str], FlaskClient],
) -> None:
    clinician, admin = client_as("clinician"), client_as("admin")
    pid = new_patient(clinician, name="Deleted Person")["id"]
    assert clinician.delete(f"/patients/{pid}").status_code == 204
    assert admin.get("/patients/deleted").json["total"] == 1
    log = admin.get(f"/patients/{pid}/access-log").json["items"]
    assert (log[0]["username"], log[0]["action"]) == ("admin", "patient.list")


def test_batching_lets_the_error_of_a_lost_connection_through(engine: Engine) -> None:
    """A transaction whose connection was lost ends with that error, not with another one
    raised by the batching's own clean-up: the group-commit writer tells a lost connection by
    it and runs the batch again on a new one."""

    def lose_the_connection_in_a_batched_transaction() -> None:
        with engine.connect() as conn, conn.begin(), trail.batched(conn):
            conn.invalidate()
            raise ConnectionError("the connection was lost")

    with pytest.raises(ConnectionError):
        lose_the_connection_in_a_batched_transaction()


def test_the_chain_keeps_the_order_of_what_one_user_did(
    make_app: Callable[..., Any], accounts: dict[str, Account]
) -> None:
    """A create carries the process's waiting events into its transaction, ahead of its own,
    as every change does: the listing looked at and the refusal that led to a confirmed
    create come before it in the chain."""
    app = make_app(audit_flush_ms=10_000, audit_max_wait_ms=60_000)  # flushed only when asked
    db = app.extensions["healthcare.db"]
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {accounts['clinician'].token}"
    asha = {"name": "Asha Verma", "date_of_birth": "1990-03-04", "phone": "020 7946 0958"}
    assert client.post("/patients", json=asha).status_code == 201
    assert client.get("/patients").status_code == 200
    assert client.post("/patients", json=asha).status_code == 409
    confirmed = client.post("/patients?confirm_not_duplicate=true", json=asha)
    assert confirmed.status_code == 201
    assert [(row["action"], row["outcome"]) for row in audit_rows(db)][-3:] == [
        ("patient.list", "success"),
        ("patient.create", "possible_duplicate"),
        ("patient.create", "success"),
    ]


def test_a_create_that_fails_after_it_was_stored_names_no_patient(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The create's transaction fails after its patient was inserted (here the chain's write
    at its end): the error row names no patient. It named the rolled-back id, which SQLite
    then gave to the next patient created, putting the failure in that patient's access log."""
    chain = trail._chain
    failing = [True]

    def chain_fails_once_for_a_create(conn: Connection, events: Any) -> None:
        if failing and any(e.action == "patient.create" and e.outcome == "success" for e in events):
            failing.pop()
            raise RuntimeError("the chain's head could not be written")
        chain(conn, events)

    monkeypatch.setattr(trail, "_chain", chain_fails_once_for_a_create)
    operator = Actor.operator()
    with pytest.raises(RuntimeError):
        service.create_patient(db, operator, PatientIn(name="Asha Verma", age=3))
    ravi = service.create_patient(db, operator, PatientIn(name="Ravi Okafor", age=50))
    [error] = audit_rows(db, action="patient.create", outcome="error")
    assert error["patient_id"] is None
    assert [row["patient_id"] for row in audit_rows(db, patient_id=ravi["id"])] == [ravi["id"]]
