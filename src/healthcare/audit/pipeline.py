"""Where the audit trail meets the data layer: a Database whose write transactions chain
their audit events in one go and whose read events wait in a bounded queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from healthcare import metrics
from healthcare.audit import trail
from healthcare.audit.pending import PendingAudit
from healthcare.config import Settings
from healthcare.db.database import Database
from healthcare.db.engine import CONNECTIONS, create_db_engine


def audited_database(engine: Engine, *, mrn_prefix: str = "MRN", **pending: Any) -> Database:
    """``pending``: PendingAudit's ``delay``, ``max_events`` and ``max_age``."""
    return Database(
        engine,
        mrn_prefix=mrn_prefix,
        around_write=trail.batched,
        pending_events=lambda write: PendingAudit(write, **{"delay": 0.25, **pending}),
        on_commit=metrics.observe_group_commit,
    )


def open_database(
    url: str, *, busy_timeout_ms: int = 30_000, connections: int = CONNECTIONS, **options: Any
) -> Database:
    """The database at ``url``, as the app and the CLI use it (``options``: those of
    ``audited_database``)."""
    engine = create_db_engine(url, busy_timeout_ms=busy_timeout_ms, connections=connections)
    return audited_database(engine, **options)


def open_configured_database(settings: Settings) -> Database:
    return open_database(
        settings.database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        # each request thread, the event loop's API reads and the group-commit writer
        connections=settings.blocking_threads + 2,
        mrn_prefix=settings.mrn_prefix,
        delay=settings.audit_flush_ms / 1000,
        max_events=settings.audit_max_pending,
        # never shorter than two flush intervals: a read must not wait for the flush and fail
        max_age=max(settings.audit_max_wait_ms, 2 * settings.audit_flush_ms) / 1000,
    )
