"""Running a use case with its audit row: a change commits with its row; anything else (a
read, a refusal) is recorded with the next flush of pending events."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection

from healthcare.audit.trail import Event, append
from healthcare.errors import ServiceError

if TYPE_CHECKING:
    from healthcare.db.database import Database

T = TypeVar("T")


def audited_write(db: Database, event: Event, work: Callable[[Connection, Event], T]) -> T:
    """Run ``work`` in a write transaction that also appends ``event``, which ``work`` may
    complete (the new patient's id, the fields it changed). A refusal is recorded with its
    outcome instead, and raised.

    The transaction also carries this process's waiting read events, so that the chain keeps
    them ahead of the change that followed them."""
    carried: list[Event] = []

    def unit(conn: Connection) -> T:
        carried.extend(db.pending_audit.take())  # kept across a retry of this unit
        result = work(conn, event)
        append(conn, [*carried, event])
        return result

    try:
        result = db.write(unit)
    except Exception as exc:
        db.pending_audit.put_back(carried)
        record_refusal(db, event, exc)
        raise
    db.pending_audit.written(carried)
    return result


def record_refusal(db: Database, event: Event, exc: Exception) -> None:
    """Record a change that was refused or failed, with its outcome, with the next flush."""
    db.audit_soon(dataclasses.replace(event, outcome=outcome_of(exc), fields=None))


def audited_read(db: Database, event: Event, read: Callable[[], T]) -> T:
    try:
        return read()
    except Exception as exc:
        event.outcome = outcome_of(exc)
        raise
    finally:
        db.audit_soon(event)


def outcome_of(exc: Exception) -> str:
    return exc.outcome if isinstance(exc, ServiceError) else "error"
