"""Bulk use cases: every patient out (export), many patients in (import). Formats are the
front ends' business (healthcare.exchange); rules and the audit trail are here."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import Connection, bindparam, select

from healthcare.audit.trail import append
from healthcare.auth.access import Actor, Permission, authorize
from healthcare.clock import utc_now
from healthcare.db.database import Database
from healthcare.db.models import patient_identifiers, patient_total, patient_totals, patients
from healthcare.db.raw import RawStatement
from healthcare.patients import queries
from healthcare.patients.schemas import PatientIn
from healthcare.patients.service import (
    duplicates_of_each,
    insert_patients,
    stored_values,
    to_api,
)

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


IMPORT_BATCH = 1_000
MATCH_BATCH = 500  # rows whose likely duplicates are looked up together
ON_RECORD = RawStatement(patient_total(patient_totals.c.active))
Row = tuple[int, PatientIn | list[str]]


@dataclass
class ImportReport:
    """What an import did or, on a dry run, would do. ``problems``: (row number, message)."""

    rows: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    valid: list[tuple[int, PatientIn]] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    written: bool = False

    @property
    def to_create(self) -> int:
        return len(self.valid)


def import_patients(
    db: Database,
    actor: Actor,
    rows: Iterable[Row],
    *,
    dry_run: bool = False,
    skip_invalid: bool = False,
    confirm_duplicates: bool = False,
) -> ImportReport:
    """Create a patient for each valid row. A row that looks like a patient on record (the
    duplicate matcher of the API) is a problem unless ``confirm_duplicates``. Nothing is
    written when any row has a problem, unless ``skip_invalid``; then the other rows are.
    Rows are written a thousand to a transaction, each patient audited as created (detail
    "import"), so that other requests keep being served while a large file goes in."""
    authorize(db, actor, Permission.BULK_TRANSFER, "patient.import")
    report = ImportReport()
    for number, data in rows:
        report.rows += 1
        if isinstance(data, PatientIn):
            report.valid.append((number, data))
        else:
            report.problems += [(number, message) for message in data]
    _identifier_conflicts(db, report)
    if not confirm_duplicates:
        _likely_duplicates(db, report)
    if dry_run or (report.problems and not skip_invalid):
        return report
    for start in range(0, len(report.valid), IMPORT_BATCH):
        chunk = report.valid[start : start + IMPORT_BATCH]
        report.created += db.write(partial(_create_all, db, actor, chunk))
        report.written = True
    return report


def _create_all(
    db: Database, actor: Actor, chunk: list[tuple[int, PatientIn]], conn: Connection
) -> list[int]:
    batch = [
        (data, stored_values(data), actor.event("patient.create", detail="import"))
        for _number, data in chunk
    ]
    insert_patients(conn, batch, db.mrn_prefix)
    events = [event for _data, _values, event in batch]
    append(conn, events)
    return [event.patient_id for event in events if event.patient_id is not None]


def _identifier_conflicts(db: Database, report: ImportReport) -> None:
    """Rows whose identifier another row or a patient on record has: problems, not created."""
    holders = _holders(db, {i.system for _n, data in report.valid for i in data.identifiers or []})
    seen: dict[tuple[str, str], int] = {}
    kept = []
    for number, data in report.valid:
        clashes = []
        for identifier in data.identifiers or []:
            key = (identifier.system, identifier.value)
            if key in holders:
                clashes.append(f"identifiers: patient {holders[key]} already has {'|'.join(key)}")
            elif key in seen:
                clashes.append(f"identifiers: row {seen[key]} has {'|'.join(key)} too")
            seen.setdefault(key, number)
        report.problems += [(number, message) for message in clashes]
        if not clashes:
            kept.append((number, data))
    report.valid = kept
    report.problems.sort()


def _likely_duplicates(db: Database, report: ImportReport) -> None:
    """Rows that look like patients on record: problems, not created unless confirmed."""
    [[(on_record,)]] = db.read((ON_RECORD, {}))
    if not on_record:
        return  # an empty registry: nobody to be a duplicate of
    kept = []
    with db.engine.connect() as conn:
        for start in range(0, len(report.valid), MATCH_BATCH):
            chunk = report.valid[start : start + MATCH_BATCH]
            found_each = duplicates_of_each(conn, [data for _number, data in chunk])
            for (number, data), found in zip(chunk, found_each, strict=True):
                report.problems += [(number, _possible_duplicate(c)) for c in found]
                if not found:
                    kept.append((number, data))
    report.valid = kept
    report.problems.sort()


def _possible_duplicate(candidate: dict[str, Any]) -> str:
    return (
        f"possible duplicate of patient {candidate['id']} ({candidate['name']}, "
        f"{candidate['mrn']}): " + ", ".join(candidate["reasons"])
    )


def _holders(db: Database, systems: set[str]) -> dict[tuple[str, str], int]:
    if not systems:
        return {}
    statement = select(
        patient_identifiers.c.system, patient_identifiers.c.value, patient_identifiers.c.patient_id
    ).where(patient_identifiers.c.system.in_(sorted(systems)))
    with db.engine.connect() as conn:
        return {(system, value): pid for system, value, pid in conn.execute(statement)}
