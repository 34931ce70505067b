"""The handle the use cases work with, and the only way to the database: grouped durable
writes, raw hot reads and Core reads on one engine.

The data layer is the bottom layer: it imports nothing of the service above it. What a write
transaction does around its work (the audit trail's batching) and where events that change
nothing wait for their write (the pending read audit) are handed in by whoever assembles the
database (``healthcare.audit.pipeline``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, TypeVar

from flask import current_app
from sqlalchemy import Connection, Engine

from healthcare.db import raw
from healthcare.db.group_commit import GroupCommit, ProcessLock, Together
from healthcare.db.revision_cache import RevisionCache, ShortLivedCache

T = TypeVar("T")
CREDENTIALS_TTL_SECONDS = 1.0
Write = Callable[[Callable[[Connection], Any]], Any]


class PendingEvents(Protocol):
    """Events that change nothing (a read, a refusal), written a moment later in a batch."""

    def add(self, event: Any) -> None: ...
    def take(self) -> list[Any]: ...
    def put_back(self, events: list[Any]) -> None: ...
    def written(self, events: list[Any]) -> None: ...
    def flush(self) -> int: ...
    def close(self) -> None: ...


class Database:
    def __init__(
        self,
        engine: Engine,
        *,
        around_write: Callable[[Connection], AbstractContextManager[Any]],
        pending_events: Callable[[Write], PendingEvents],
        on_commit: Callable[[int, float], None] = lambda _units, _seconds: None,
        mrn_prefix: str = "MRN",
    ) -> None:
        self.engine = engine
        self.mrn_prefix = mrn_prefix  # what new medical record numbers start with
        self.dialect = engine.dialect.name
        self._writer = GroupCommit(
            engine,
            process_lock=_sqlite_process_lock(engine),
            around=around_write,
            on_commit=on_commit,
        )
        self._readers = raw.readers_for(engine)
        self.pages = RevisionCache()
        # Who an API token belongs to, for a second: see healthcare.auth.tokens.
        self.credentials = ShortLivedCache(ttl=CREDENTIALS_TTL_SECONDS)
        self.pending_audit = pending_events(self.write)

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction; returns once it is durably committed."""
        return self._writer.run(work)

    def write_together(self, together: Together, item: Any) -> Any:
        """Run ``together(conn, items)`` for ``item`` and the items of other threads' writes
        of the same kind that arrive meanwhile, in one write transaction (see
        ``GroupCommit.run_together``); this item's result once durably committed."""
        return self._writer.run_together(together, item)

    def read(
        self, *selects: tuple[raw.RawStatement, dict[str, Any]]
    ) -> list[list[tuple[Any, ...]]]:
        """The hot reads: raw statements on a reader connection, rows as tuples."""
        return raw.fetch(self._readers, *selects)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads with SQLAlchemy Core (nothing it does is committed)."""
        with self.engine.connect() as conn:
            yield conn

    def audit_soon(self, event: Any) -> None:
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
