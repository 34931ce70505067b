"""One request at a time runs Python in a server worker; a request waiting for its commit
steps aside.

Python threads in one process share one interpreter lock. Reads are CPU work from start to
end: several request threads reading at once only take turns on that lock, and the lock hands
itself over in no particular order, so the slowest reads wait longest. A write spends most of
its time waiting for its commit's fsync; while it waits, another request can run, and writes
that wait together share one commit (see ``db.group_commit``).

The gate gives both: a request holds it while it runs and lets go only while it waits for a
commit or a PostgreSQL round trip. Waiting requests get it in arrival order, handed over
directly, so none is overtaken.

One rule keeps it from deadlocking: a request must not wait for another request while it
holds the gate. Code that waits on a lock which a stepped-aside request may hold steps aside
before taking it (the audit flush does)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class Gate:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._waiting: deque[tuple[int, threading.Lock]] = deque()

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._owner is None:
                self._owner = me
                return
            handed = threading.Lock()
            handed.acquire()
            self._waiting.append((me, handed))
        handed.acquire()

    def release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._owner, handed = self._waiting.popleft()
                handed.release()
            else:
                self._owner = None

    def held_here(self) -> bool:
        return self._owner == threading.get_ident()

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @contextmanager
    def stepped_aside(self) -> Iterator[None]:
        """Around a wait for I/O: other requests run meanwhile. A thread that does not hold
        the gate (the CLI, a background thread) just waits."""
        if not self.held_here():
            yield
            return
        self.release()
        try:
            yield
        finally:
            self.acquire()


requests = Gate()
