"""Where the audit trail meets the data layer: a Database whose write transactions chain
their audit events in one go and whose read events wait in a bounded queue."""

from __future__ import annotations

from sqlalchemy import Engine

from healthcare.audit import trail
from healthcare.audit.pending import PendingAudit
from healthcare.db.database import Database
from healthcare.db.engine import create_db_engine


def audited_database(engine: Engine, *, audit_delay: float = 0.25) -> Database:
    return Database(
        engine,
        around_write=trail.batched,
        pending_events=lambda write: PendingAudit(write, audit_delay),
    )


def open_database(
    url: str, *, busy_timeout_ms: int = 30_000, audit_delay: float = 0.25
) -> Database:
    """The database at ``url``, as the app and the CLI use it."""
    return audited_database(
        create_db_engine(url, busy_timeout_ms=busy_timeout_ms), audit_delay=audit_delay
    )
