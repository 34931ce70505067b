"""Every version of a patient: written with each change, read back with what changed.

A version holds the record's values as they stood after the change (the fields a client can
write, the record number, whether it was deleted, which record it was merged into), who made
the change and when. Differences are computed when read, between neighbouring versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select

from healthcare.audit.trail import Event
from healthcare.clock import rfc3339
from healthcare.db.models import patient_versions
from healthcare.db.raw import MultiRowInsert
from healthcare.patients.schemas import PatientIn

VERSIONED = ("mrn", *PatientIn.model_fields, "merged_into")
COLUMNS = ("patient_id", "version", "action", "changed_at", "user_id", "username", "values")
INSERT = MultiRowInsert(patient_versions, COLUMNS)


def snapshot(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The values of a stored row that a version keeps."""
    values: dict[str, Any] = {}
    for name in VERSIONED:
        value = stored.get(name)
        if name == "identifiers":
            value = orjson.loads(value) if isinstance(value, str) else (value or [])
        elif isinstance(value, date | datetime):
            value = value.isoformat()
        values[name] = value
    values["deleted"] = stored.get("deleted_at") is not None
    return values


def record_version(conn: Connection, stored: Mapping[str, Any], event: Event, at: datetime) -> None:
    """Keep the row as it now stands as version ``stored['version']``."""
    record_versions(conn, [(stored, event)], at)


def record_versions(
    conn: Connection, changed: Sequence[tuple[Mapping[str, Any], Event]], at: datetime
) -> None:
    """Keep each row as it now stands, changed by its event: many rows a statement."""
    INSERT.run(conn, [version_row(stored, event, at) for stored, event in changed])


def version_row(stored: Mapping[str, Any], event: Event, at: datetime) -> tuple[Any, ...]:
    """The version row (``COLUMNS``) that keeps ``stored`` as it now stands."""
    return (
        stored["id"],
        stored["version"],
        event.action,
        at,
        event.user_id,
        event.username,
        orjson.dumps(snapshot(stored)).decode(),
    )


def forget(conn: Connection, patient_id: int) -> None:
    conn.execute(delete(patient_versions).where(patient_versions.c.patient_id == patient_id))


def _as_api(row: Any) -> dict[str, Any]:
    return {
        "version": row.version,
        "action": row.action,
        "changed_at": rfc3339(row.changed_at),
        "changed_by": row.username,
        "values": orjson.loads(row.values),
    }


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What differs from ``before`` to ``after``, field by field (everything set, for the first
    version)."""
    before = before or {}
    return [
        {"field": name, "from": before.get(name), "to": value}
        for name, value in after.items()
        if before.get(name) != value and (before or value not in (None, [], False))
    ]


def versions(conn: Connection, patient_id: int) -> list[dict[str, Any]]:
    """All versions, newest first, each with its changes from the one before."""
    rows = conn.execute(
        select(patient_versions)
        .where(patient_versions.c.patient_id == patient_id)
        .order_by(patient_versions.c.version)
    ).all()
    listed, previous = [], None
    for row in rows:
        version = _as_api(row)
        version["changes"] = changes(previous, version["values"])
        previous = version["values"]
        listed.append(version)
    return listed[::-1]


def one_version(conn: Connection, patient_id: int, number: int) -> dict[str, Any] | None:
    rows = conn.execute(
        select(patient_versions)
        .where(
            patient_versions.c.patient_id == patient_id,
            patient_versions.c.version.in_([number - 1, number]),
        )
        .order_by(patient_versions.c.version)
    ).all()
    if not rows or rows[-1].version != number:
        return None
    version = _as_api(rows[-1])
    previous = _as_api(rows[0])["values"] if len(rows) == 2 else None
    version["changes"] = changes(previous, version["values"])
    return version
