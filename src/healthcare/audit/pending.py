"""Read events wait in memory for a moment, then join the audit chain many at a time.

A change writes its audit row in its own transaction. A read changes nothing, so giving it a
transaction (and an fsync) of its own would cost more than the read: its event waits here
until the next flush, at most ``delay`` seconds later, or sooner when many are waiting. The
flush goes through the same group-commit writer as every change. On a clean stop the rest is
flushed.

The queue is bounded, so that the audit fails closed: once ``max_events`` wait (queued or
being written), or events have waited ``max_age`` seconds with no audit write getting through
(another process holds the write lock, the database is gone), ``add`` refuses with
``AuditBacklog`` (503) and the read it would have recorded is not answered. A killed process
therefore loses at most the reads it answered within ``max_age`` seconds of its last audit
write that committed, and at most ``max_events`` of them (docs/request-path.md). Before that,
once HIGH_WATER events wait, new reads wait for the flush: backpressure, not refusal."""

from __future__ import annotations

import asyncio
import atexit
import logging
import multiprocessing.util
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from healthcare import metrics
from healthcare.audit.trail import Event, append
from healthcare.errors import AuditBacklog

log = logging.getLogger("healthcare.audit")
FLUSH_AT = 256  # a flush holds the interpreter for a few milliseconds at most
HIGH_WATER = 4 * FLUSH_AT  # past this many waiting, a read waits for the flush first


class PendingAudit:
    def __init__(
        self,
        write: Callable[[Callable[[Connection], Any]], Any],
        delay: float,
        *,
        max_events: int = 10_000,
        max_age: float = 2.0,
    ) -> None:
        self._write = write
        self.delay = delay
        self.max_events = max_events
        self.max_age = max_age
        self._events: list[Event] = []
        self._in_flight = 0  # taken by a write that has not committed yet
        self._behind_since = 0.0  # since when events wait with no audit write getting through
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._started_in: int | None = None
        self._closed = False

    def add(self, event: Event) -> None:
        if self._started_in != os.getpid():
            self._start()
        with self._lock:
            if not _on_an_event_loop():  # the server sends flooded reads to its threads
                self._wait_while_flooded()
            self._refuse_when_behind()
            if not self._events and not self._in_flight:
                self._behind_since = time.monotonic()
            self._events.append(event)
            queued = len(self._events)
            many = queued >= FLUSH_AT
        metrics.set_audit_queued(queued)
        if many:
            self._wake.set()

    def flooded(self) -> bool:
        """Whether a new read would wait for the flush (HIGH_WATER events wait): the server
        then runs it in a thread rather than on its event loop, which waiting would stop."""
        return len(self._events) + self._in_flight >= HIGH_WATER

    def _wait_while_flooded(self) -> None:
        """Backpressure, with the lock held: while HIGH_WATER events wait, a new read waits
        for the flush to take them (the lock is let go meanwhile), so that reads go at the
        pace the audit is written instead of piling up flushes too large to commit within
        ``max_age``. Refusal stays for an audit that is not getting through at all."""
        while self.flooded():
            self._wake.set()
            remaining = self.max_age - (time.monotonic() - self._behind_since)
            if remaining <= 0 or not self._drained.wait(remaining):
                return

    def _refuse_when_behind(self) -> None:
        waiting = len(self._events) + self._in_flight
        if waiting >= self.max_events:
            raise AuditBacklog(f"{waiting} audit events wait to be written; try again.")
        if waiting and time.monotonic() - self._behind_since > self.max_age:
            raise AuditBacklog("The audit trail is not being written; try again shortly.")

    def take(self) -> list[Event]:
        """Every waiting event, for a write that will add them to its own transaction."""
        with self._lock:
            events, self._events = self._events, []
            self._in_flight += len(events)
        metrics.set_audit_queued(len(self._events))
        return events

    def written(self, events: list[Event]) -> None:
        """Events taken by a write that committed: the audit is keeping up."""
        with self._lock:
            self._in_flight -= len(events)
            self._behind_since = time.monotonic()
            self._drained.notify_all()

    def put_back(self, events: list[Event]) -> None:
        """Events taken by a write that did not commit: they wait for the next flush."""
        if events:
            with self._lock:
                self._in_flight -= len(events)
                self._events[:0] = events
                queued = len(self._events)
            metrics.set_audit_queued(queued)

    def flush(self) -> int:
        """Write every waiting event now; how many were written."""
        with self._flushing:
            events = self.take()
            if not events:
                return 0
            try:
                self._write(lambda conn: append(conn, events))
            except Exception:
                log.exception("audit events not written yet; keeping them for the next flush")
                self.put_back(events)
                return 0
            self.written(events)
            return len(events)

    def _start(self) -> None:
        # Once per process: a forked server worker inherits neither the thread nor the events.
        with self._lock:
            if self._started_in == os.getpid():
                return
            self._events = []
            self._started_in = os.getpid()
        threading.Thread(target=self._flush_forever, name="audit-flush", daemon=True).start()
        # atexit for ordinary processes; server workers are multiprocessing children, which
        # leave through os._exit and run only multiprocessing's finalizers.
        atexit.register(self.flush)
        multiprocessing.util.Finalize(self, self.flush, exitpriority=100)

    def close(self) -> None:
        """Flush, and let the flushing thread end."""
        self._closed = True
        self._wake.set()
        self.flush()

    def _flush_forever(self) -> None:
        while not self._closed:
            self._wake.wait(self.delay)
            self._wake.clear()
            self.flush()


def _on_an_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
