"""The kept patient totals: exact however many patients one statement writes."""

from __future__ import annotations

import importlib.util
import random
import threading
from types import ModuleType

import pytest
from sqlalchemy import Connection, delete, func, select, text, update

from healthcare.db import migrate
from healthcare.db.database import Database
from healthcare.db.engine import write_transaction
from healthcare.db.models import (
    patient_identifiers,
    patient_total,
    patient_totals,
    patient_versions,
    patients,
)
from healthcare.patients.seed import insert_with_identity, synthetic_patients


def _kept_and_counted(db: Database) -> tuple[tuple[int, int], tuple[int, int]]:
    with db.engine.connect() as conn:
        kept = tuple(
            conn.execute(patient_total(column)).scalar_one()
            for column in (patient_totals.c.active, patient_totals.c.deleted)
        )
        deleted = patients.c.deleted_at.is_not(None)
        counted = conn.execute(
            select(func.count().filter(~deleted), func.count().filter(deleted))
        ).one()
    return tuple(kept), tuple(counted)


def test_totals_stay_exact_when_one_statement_writes_many_patients(db: Database) -> None:
    """(PostgreSQL counts a statement's rows at once, with transition tables: migration
    0008. A row trigger there made bulk writes quadratic.)"""
    with write_transaction(db.engine) as conn:
        insert_with_identity(conn, list(synthetic_patients(300, random.Random(3))), "MRN")
        revision = conn.execute(patient_total(patient_totals.c.revision)).scalar()
    assert _kept_and_counted(db) == ((300, 0), (300, 0))
    with write_transaction(db.engine) as conn:
        conn.execute(update(patients).where(patients.c.id <= 120).values(deleted_at=func.now()))
        conn.execute(update(patients).where(patients.c.id <= 20).values(deleted_at=None))
        conn.execute(update(patients).where(patients.c.id > 1000).values(age=1))  # no rows
    assert _kept_and_counted(db) == ((200, 100), (200, 100))
    with write_transaction(db.engine) as conn:
        gone = patients.c.id.between(100, 149)
        for table in (patient_identifiers, patient_versions):
            conn.execute(delete(table).where(table.c.patient_id.between(100, 149)))
        conn.execute(delete(patients).where(gone))
        assert conn.execute(patient_total(patient_totals.c.revision)).scalar() > revision
    assert _kept_and_counted(db) == ((171, 79), (171, 79))


def _slot(conn: Connection) -> int:
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    conn.rollback()
    return 1 + pid % 64


def test_writers_on_two_connections_do_not_wait_for_each_other(db: Database) -> None:
    """PostgreSQL (migration 0011): each connection keeps the totals in its own slot, so a
    transaction that has written patients holds back no other writer until it commits. With
    one totals row the second insert waited for the first transaction's commit (here, the
    lock timeout)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: its one totals row is no contention")
    first = db.engine.connect()
    second = db.engine.connect()
    while _slot(second) == _slot(first):  # another backend process: another slot
        second.close()
        second = db.engine.connect()
    try:
        rows = list(synthetic_patients(20, random.Random(5)))
        with first.begin():
            insert_with_identity(first, rows[:10], "MRN")
            with second.begin():
                second.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                insert_with_identity(second, rows[10:], "MRN")
    finally:
        first.close()
        second.close()
    assert _kept_and_counted(db) == ((20, 0), (20, 0))


def _migration_0011() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "migration_0011", migrate.MIGRATIONS / "versions" / "0011_totals_in_slots.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_a_write_during_the_downgrade_of_the_slots_keeps_its_counts(db: Database) -> None:
    """Migration 0011's way down adds the slots into one row and deletes the others, with
    the tables locked: a server still writing meanwhile waits and is counted after, by the
    one-row trigger, instead of having its slot (and its counts) deleted under it."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the slots are PostgreSQL's")
    down = _migration_0011().IN_ONE_ROW
    writer = db.engine.connect()
    while _slot(writer) == 1:  # a slot the way down deletes
        writer.close()
        writer = db.engine.connect()

    def write_meanwhile() -> None:
        with writer.begin():
            insert_with_identity(writer, list(synthetic_patients(3, random.Random(1))), "MRN")

    try:
        with db.engine.begin() as conn:
            for statement in down[:3]:  # locked, one-row trigger, slots summed into row 1
                conn.execute(text(statement))
            other_server = threading.Thread(target=write_meanwhile)
            other_server.start()
            other_server.join(0.5)
            assert other_server.is_alive()  # waiting for the way down
            for statement in down[3:]:
                conn.execute(text(statement))
        other_server.join(10)
    finally:
        writer.close()
        with db.engine.begin() as conn:  # back up, for the other tests
            for statement in _migration_0011().IN_SLOTS:
                conn.execute(text(statement))
    assert _kept_and_counted(db) == ((3, 0), (3, 0))
