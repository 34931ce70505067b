"""Read events wait in memory for a moment, then join the audit chain many at a time.

A change writes its audit row in its own transaction. A read changes nothing, so giving it a
transaction (and an fsync) of its own would cost more than the read: its event waits here
until the next flush, at most ``delay`` seconds later, or sooner when many are waiting. The
flush goes through the same group-commit writer as every change. On a clean stop the rest is
flushed; a killed process loses at most the events of its last ``delay`` seconds."""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from healthcare import gate, metrics
from healthcare.audit.trail import Event, append

log = logging.getLogger("healthcare.audit")
FLUSH_AT = 256  # a flush holds the interpreter for a few milliseconds at most
MAX_KEPT_ON_FAILURE = 100_000


class PendingAudit:
    def __init__(self, write: Callable[[Callable[[Connection], Any]], Any], delay: float) -> None:
        self._write = write
        self.delay = delay
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flushing = threading.Lock()
        self._started_in: int | None = None
        self._closed = False

    def add(self, event: Event) -> None:
        if self._started_in != os.getpid():
            self._start()
        with self._lock:
            self._events.append(event)
            queued = len(self._events)
            many = queued >= FLUSH_AT
        metrics.set_audit_queued(queued)
        if many:
            self._wake.set()

    def take(self) -> list[Event]:
        """Every waiting event, for a write that will add them to its own transaction."""
        with self._lock:
            events, self._events = self._events, []
        metrics.set_audit_queued(0)
        return events

    def put_back(self, events: list[Event]) -> None:
        """Events taken by a write that did not commit: they wait for the next flush."""
        if events:
            with self._lock:
                self._events[:0] = events
                queued = len(self._events)
            metrics.set_audit_queued(queued)

    def flush(self) -> int:
        """Write every waiting event now; how many were written."""
        # The write steps aside from the request gate while it waits for its commit; waiting
        # here for another flush must not keep the gate from that flush when its commit ends.
        with gate.requests.stepped_aside(), self._flushing:
            events = self.take()
            if not events:
                return 0
            try:
                self._write(lambda conn: append(conn, events))
            except Exception:
                log.exception("audit events not written yet; keeping them for the next flush")
                self.put_back(events[-MAX_KEPT_ON_FAILURE:])
                return 0
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
