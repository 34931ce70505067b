"""The audit chain's parts, rule by rule: the stored values of an event, text the columns can
always take, events held back until a group commit ends, and what ``verify`` reports."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, select, text

from healthcare.audit import trail
from healthcare.db.database import Database
from healthcare.db.models import audit_chain
from tests.conftest import audit_guard_lifted, audit_rows

AT = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)


def _write(db: Database, *events: trail.Event) -> None:
    db.write(lambda conn: trail.append(conn, list(events)))


def _head(conn: Connection) -> tuple[int, str]:
    return tuple(conn.execute(select(audit_chain.c.last_id, audit_chain.c.last_hash)).one())


def test_an_events_values_are_its_columns_with_the_fields_sorted() -> None:
    event = trail.Event("patient.update", "stale", user_id=1, username="ann", token_label="lab",
                        token_id=5, client="10.0.0.1", request_id="r1", patient_id=9,
                        fields=["notes", "age"], detail="why", at=AT)  # fmt: skip
    assert event.values() == (AT, 1, "ann", "lab", "patient.update", 9, "stale", "10.0.0.1",
                              "r1", "age,notes", "why", 5)  # fmt: skip
    assert trail.VALUE_COLUMNS[-1] == "token_id"
    assert trail.Event("x", fields=[]).values()[9] is None
    assert trail.Event("x").outcome == trail.SUCCESS == "success"


def test_an_event_is_stamped_when_it_is_made() -> None:
    before = datetime.now(UTC)
    event = trail.Event("x")
    assert before <= event.at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (None, None),
        ("u" * 64, "u" * 64),
        ("u" * 65, "u" * 64),
        ("tab\there", "tab\ufffdhere"),
        ("line\u2028separator", "line\u2028separator"),  # not printable, yet no control char
        ("é" * 70, "é" * 64),
    ],
)
def test_text_is_kept_as_the_column_can_take_it(value: str | None, stored: str | None) -> None:
    assert trail.Event("x", username=value).values()[2] == stored


def test_each_text_column_has_its_own_limit() -> None:
    event = trail.Event("x", username="u" * 300, token_label="t" * 300, client="c" * 300,
                        request_id="r" * 300, detail="d" * 300)  # fmt: skip
    values = event.values()
    assert [len(values[i]) for i in (2, 3, 7, 8, 10)] == [64, 100, 64, 64, 200]


def test_appended_events_extend_the_chain_from_its_head(db: Database) -> None:
    _write(db, trail.Event("a", at=AT), trail.Event("b", at=AT))
    _write(db)
    with db.engine.connect() as conn:
        last_id, last_hash = _head(conn)
        keyed = conn.execute(select(audit_chain.c.keyed_from, audit_chain.c.key_id)).one()
    key = trail.key_for(db.engine)
    assert key is not None  # the test app registers an audit key: the chain is keyed
    assert tuple(keyed) == (1, trail.key_id(key))
    rows = audit_rows(db)
    assert [row["id"] for row in rows] == [1, 2]
    assert (last_id, last_hash) == (2, rows[-1]["hash"])
    first = trail.row_hash(trail.GENESIS_HASH, 1, trail.stored_values(rows[0]), key)
    assert rows[0]["hash"] == first
    assert rows[1]["hash"] == trail.row_hash(first, 2, trail.stored_values(rows[1]), key)


def test_a_batch_joins_the_chain_once_at_its_end(db: Database) -> None:
    def unit(conn: Connection) -> list[int]:
        with trail.batched(conn):
            trail.append(conn, [trail.Event("a")])
            trail.append(conn, [trail.Event("b"), trail.Event("c")])
            inside = conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
        trail.append(conn, [trail.Event("d")])  # after the batch: straight into the chain
        return [inside]

    assert db.write(unit) == [0]
    assert [row["action"] for row in audit_rows(db)] == ["a", "b", "c", "d"]
    assert trail.verify(db.engine).intact


def test_a_failed_batch_adds_nothing_and_leaves_no_queue_behind(db: Database) -> None:
    def unit(conn: Connection) -> None:
        with suppress(RuntimeError), trail.batched(conn):
            trail.append(conn, [trail.Event("lost")])
            raise RuntimeError("the change failed")
        assert trail.QUEUED not in conn.info
        trail.append(conn, [trail.Event("after")])

    db.write(unit)
    assert [row["action"] for row in audit_rows(db)] == ["after"]


def test_an_empty_chain_verifies_with_no_rows(db: Database) -> None:
    assert trail.verify(db.engine) == trail.ChainReport(0)
    assert trail.ChainReport(0).intact
    assert not trail.ChainReport(3, 2, "x").intact


def test_verify_says_which_row_is_missing_or_edited(db: Database) -> None:
    _write(db, *(trail.Event(f"e{i}") for i in range(4)))
    assert trail.verify(db.engine) == trail.ChainReport(4, keyed_from=1)
    with audit_guard_lifted(db.engine) as conn:
        conn.execute(text("UPDATE audit_events SET detail = 'edited' WHERE id = 3"))
    assert trail.verify(db.engine) == trail.ChainReport(
        2, 3, "row 3 does not match its hash", keyed_from=1
    )
    with audit_guard_lifted(db.engine) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = 2"))
    assert trail.verify(db.engine) == trail.ChainReport(1, 2, "row 2 is missing", keyed_from=1)


def test_verify_notices_rows_cut_from_the_end(db: Database) -> None:
    _write(db, *(trail.Event(f"e{i}") for i in range(3)))
    with audit_guard_lifted(db.engine) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = 3"))
    report = trail.verify(db.engine)
    assert report == trail.ChainReport(2, 3, "rows after 2 are missing (head at 3)", keyed_from=1)


def test_the_api_shows_a_row_with_its_fields_as_a_list(db: Database) -> None:
    _write(db, trail.Event("patient.update", patient_id=4, fields=["b", "a"], at=AT),
           trail.Event("patient.read", at=AT))  # fmt: skip
    first, second = audit_rows(db)
    shown = trail.as_api(first)
    assert shown == {
        "id": 1, "at": "2026-05-04T03:02:01.123456Z", "user_id": None, "username": None,
        "token_label": None, "action": "patient.update", "patient_id": 4, "outcome": "success",
        "client": None, "request_id": None, "fields": ["a", "b"], "detail": None,
        "token_id": None, "hash": first["hash"],
    }  # fmt: skip
    assert trail.as_api(second)["fields"] == []


def test_export_starts_at_the_given_moment_inclusive(db: Database) -> None:
    _write(db, *(trail.Event(f"e{i}", at=AT + timedelta(seconds=i)) for i in range(3)))
    since = [row["action"] for row in trail.export(db.engine, AT + timedelta(seconds=1))]
    assert since == ["e1", "e2"]
    assert [row["id"] for row in trail.export(db.engine)] == [1, 2, 3]
