"""Bulk use cases: every patient out (export), many patients in (import). Formats are the
front ends' business (healthcare.exchange); rules and the audit trail are here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import bindparam, select

from healthcare.audit.trail import append
from healthcare.auth.access import Actor, Permission, authorize
from healthcare.clock import utc_now
from healthcare.db.database import Database
from healthcare.db.models import patients
from healthcare.db.raw import RawStatement
from healthcare.patients import queries
from healthcare.patients.service import to_api

EXPORT_BATCH = 2_000
NEXT_BATCH = RawStatement(
    select(*queries.PUBLIC_COLUMNS)
    .where(queries.active, patients.c.id > bindparam("after"))
    .order_by(patients.c.id)
    .limit(bindparam("limit"))
)


def export_patients(
    db: Database, actor: Actor, purpose: str, batch: int = EXPORT_BATCH
) -> Iterator[list[dict[str, Any]]]:
    """Every patient that is not deleted, in id order, a batch at a time. Each batch is in the
    audit trail (one ``patient.export`` row per patient, ``purpose`` as detail) before it is
    handed over."""
    authorize(db, actor, Permission.BULK_TRANSFER, "patient.export")
    after, today = 0, utc_now().date()
    while True:
        [rows] = db.read((NEXT_BATCH, {"after": after, "limit": batch}))
        if not rows:
            return
        items = [to_api(row, today) for row in rows]
        events = [actor.event("patient.export", patient_id=p["id"], detail=purpose) for p in items]
        db.write(lambda conn, events=events: append(conn, events))
        yield items
        after = items[-1]["id"]
