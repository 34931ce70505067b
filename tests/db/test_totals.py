"""The kept patient totals: exact however many patients one statement writes."""

from __future__ import annotations

import random

from sqlalchemy import delete, func, select, update

from healthcare.db.database import Database
from healthcare.db.engine import write_transaction
from healthcare.db.models import patient_identifiers, patient_totals, patient_versions, patients
from healthcare.patients.seed import insert_with_identity, synthetic_patients


def _kept_and_counted(db: Database) -> tuple[tuple[int, int], tuple[int, int]]:
    with db.engine.connect() as conn:
        kept = conn.execute(select(patient_totals.c.active, patient_totals.c.deleted)).one()
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
        revision = conn.execute(select(patient_totals.c.revision)).scalar()
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
        assert conn.execute(select(patient_totals.c.revision)).scalar() > revision
    assert _kept_and_counted(db) == ((171, 79), (171, 79))
