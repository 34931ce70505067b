"""The handle the use cases work with: grouped durable writes and raw hot reads on one engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import Connection, Engine

from healthcare import gate
from healthcare.audit import trail
from healthcare.audit.pending import PendingAudit
from healthcare.audit.trail import Event
from healthcare.db import raw
from healthcare.db.engine import create_db_engine
from healthcare.db.group_commit import GroupCommit, ProcessLock
from healthcare.db.revision_cache import RevisionCache, ShortLivedCache

T = TypeVar("T")
CREDENTIALS_TTL_SECONDS = 1.0


class Database:
    def __init__(
        self, engine: Engine, *, audit_delay: float = 0.25, mrn_prefix: str = "MRN"
    ) -> None:
        self.engine = engine
        self.mrn_prefix = mrn_prefix  # what new medical record numbers start with
        self.dialect = engine.dialect.name
        self._writer = GroupCommit(
            engine, process_lock=_sqlite_process_lock(engine), around=trail.batched
        )
        self._readers = raw.readers_for(engine)
        self.pages = RevisionCache()
        # Who an API token belongs to, for a second: see healthcare.auth.tokens.
        self.credentials = ShortLivedCache(ttl=CREDENTIALS_TTL_SECONDS)
        self.pending_audit = PendingAudit(self.write, audit_delay)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        busy_timeout_ms: int = 30_000,
        audit_delay: float = 0.25,
        mrn_prefix: str = "MRN",
    ) -> Database:
        engine = create_db_engine(url, busy_timeout_ms=busy_timeout_ms)
        return cls(engine, audit_delay=audit_delay, mrn_prefix=mrn_prefix)

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction; returns once it is durably committed."""
        return self._writer.run(work)

    def read(
        self, *selects: tuple[raw.RawStatement, dict[str, Any]]
    ) -> list[list[tuple[Any, ...]]]:
        if self.dialect == "sqlite":  # a local file read: shorter than handing the gate over
            return raw.fetch(self._readers, *selects)
        with gate.requests.stepped_aside():  # a PostgreSQL round trip: let others run meanwhile
            return raw.fetch(self._readers, *selects)

    def audit_soon(self, event: Event) -> None:
        """Record an event that changes nothing (a read, a refusal) with the next flush."""
        self.pending_audit.add(event)

    def dispose(self) -> None:
        """Write what is pending, end this process's writer threads, close the connections."""
        self.pending_audit.close()
        self._writer.close()
        self._readers.close()
        self.engine.dispose()


def _sqlite_process_lock(engine: Engine) -> ProcessLock | None:
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        return None
    return ProcessLock(f"{path}.write-lock")


def current_database() -> Database:
    """The database of the app handling this request."""
    return current_app.extensions["healthcare.db"]
