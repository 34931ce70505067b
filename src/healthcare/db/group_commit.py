"""Group commit: many threads' writes share one transaction and so one fsync.

With ``synchronous=FULL`` every SQLite commit waits for the disk, and writers queue behind
one another for the write lock. Here each process has one writer thread that takes every
write unit waiting, runs each in its own SAVEPOINT inside a single transaction, and commits
once. A unit that fails is rolled back alone and its caller gets the exception; a caller
returns only after the commit that holds its unit, so an acknowledged write is durable.
A unit may run more than once (see ``_commit``): it must only touch the database.

Units of one kind can also be run together (``run_together``): consecutive units queued with
the same function are handed to it in one call, which does for all of them what each would
do alone (one lookup, one multi-row insert) and answers each one, with a result or with the
exception that refuses it alone; the transaction goes on for the others.

While writes keep coming, the writer thread keeps its connection from one transaction to the
next; it gives it back to the pool whenever it has nothing to do. A SQLite connection has its
own page cache, which SQLite empties whenever another connection has written: a writer that
took whichever pooled connection was free started most transactions with an empty cache and
paid a pool checkout besides; on PostgreSQL the checkout's liveness check is a round trip per
commit (docs/request-path.md has the figures). A connection is never kept idle, where a server
could drop it or a restore dispose of its pool."""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from healthcare.db.engine import writing

T = TypeVar("T")
log = logging.getLogger("healthcare.db")
MAX_BATCH = 64
_STOP: Any = object()  # queued by close(): the writer ends after the units before it


Together = Callable[[Connection, list[Any]], list[Any]]  # items in, a result or error each
_OUTCOME_HOOKS = "healthcare.group_commit.outcome_hooks"


def when_done(conn: Connection, committed: Callable[[], None], failed: Callable[[], None]) -> None:
    """Inside a group-commit transaction: call ``committed`` once it has committed, or
    ``failed`` if it does not (it may then run again, and call this again)."""
    conn.info[_OUTCOME_HOOKS].append((committed, failed))


class _Unit(Generic[T]):
    __slots__ = ("done", "error", "item", "result", "together", "work")

    def __init__(
        self,
        work: Callable[[Connection], T] | None,
        together: Together | None = None,
        item: Any = None,
    ) -> None:
        self.work = work
        self.together = together
        self.item = item
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class ProcessLock:
    """An exclusive lock across the processes that write one SQLite file.

    SQLite's own busy handler sleeps in growing steps (up to 100 ms) while another process
    holds the write lock; a blocked flock wakes the moment the holder lets go, which keeps
    the tail latency of writes from several server workers short."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid: int | None = None

    def __enter__(self) -> None:
        if self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # type: ignore[arg-type]

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)  # type: ignore[arg-type]


class GroupCommit:
    def __init__(
        self,
        engine: Engine,
        max_batch: int = MAX_BATCH,
        process_lock: AbstractContextManager[Any] | None = None,
        around: Callable[[Connection], AbstractContextManager[Any]] | None = None,
        on_commit: Callable[[int, float], None] = lambda _units, _seconds: None,
    ) -> None:
        """``on_commit(units, seconds)`` after each commit (not after a transaction that
        failed): how many units it carried, and its database time from BEGIN to COMMIT."""
        self.engine = engine
        self._connection: Connection | None = None  # the writer thread's, while it is busy
        self.on_commit = on_commit
        self.max_batch = max_batch
        self.process_lock = process_lock or nullcontext()
        # Wraps each transaction inside its BEGIN ... COMMIT (the audit trail's batching).
        self.around = around or (lambda _conn: nullcontext())
        self._queue: queue.SimpleQueue[_Unit[Any]] = queue.SimpleQueue()
        self._started_in: int | None = None
        self._start_lock = threading.Lock()

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction and return its result once committed; the
        writes of other threads that arrive meanwhile join the same commit."""
        return self._wait_for(_Unit(work))

    def run_together(self, together: Together, item: Any) -> Any:
        """Run ``together(conn, [item, ...])`` in a write transaction with the items of the
        units queued beside this one for the same function; return this item's result once
        committed, or raise the exception it was answered with. ``together`` writes nothing
        for an item it answers with an exception."""
        return self._wait_for(_Unit(None, together, item))

    def _wait_for(self, unit: _Unit[T]) -> T:
        with self._start_lock:  # never queued behind a close()'s stop, where none would run it
            self._ensure_writer()
            self._queue.put(unit)
        unit.done.wait()
        if unit.error is not None:
            raise unit.error
        return unit.result  # type: ignore[return-value]

    def _ensure_writer(self) -> None:
        """With ``_start_lock`` held. Started lazily, again after close(), and again in a
        forked child, which inherits no threads."""
        if self._started_in != os.getpid():
            self._queue = queue.SimpleQueue()
            self._connection = None  # a forked child never uses its parent's
            self._writer = threading.Thread(
                target=self._write_forever, name="group-commit", daemon=True
            )
            self._writer.start()
            self._started_in = os.getpid()

    def close(self) -> None:
        """Let this process's writer thread end once the writes queued before have committed:
        a process that forks afterwards (the server's parent) must have no thread running."""
        with self._start_lock:
            if self._started_in != os.getpid():
                return
            self._queue.put(_STOP)
            self._writer.join()
            self._started_in = None

    def _write_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch and batch[-1] is not _STOP:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = batch[-1] is _STOP
            if stop:
                batch.pop()
            if batch:
                self._commit(batch)
            if stop:
                self._give_connection_back()
                return

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        if self._connection is None:
            self._connection = writing(self.engine.connect())
        with self._connection.begin():
            yield self._connection

    def _give_connection_back(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _commit(self, batch: list[_Unit[Any]], *, again: bool = False) -> None:
        """Commit the batch as one transaction. If any unit fails, nothing of the batch is
        kept and each unit runs again in a transaction of its own, so a failure (a version
        conflict, say) reaches its own caller alone. Failures are rare; savepoints around
        every unit would cost more than these retries.

        A connection that was lost before COMMIT (the server restarted or ended it) is
        replaced, and the batch runs once more; so does a batch that PostgreSQL ended to
        break a deadlock. One lost during COMMIT is not: the batch may have been committed,
        and running it again could store it twice, so its callers get the error."""
        started = time.perf_counter()
        committing = committed = False
        hooks: list[tuple[Callable[[], None], Callable[[], None]]] = []
        try:
            with self.process_lock:
                with self._transaction() as conn:
                    conn.info[_OUTCOME_HOOKS] = hooks
                    with self.around(conn):
                        for units in _runs(batch):
                            _run(conn, units)
                    committing = True
                committed = True
        except Exception as exc:
            if committed:  # letting the lock go failed; the batch is committed all the same
                log.exception("the write lock was not let go cleanly after a commit")
            else:
                _call(failed for _committed, failed in hooks)
                if self._run_again(batch, exc, committing=committing, again=again):
                    return
        if committed:
            _call(committed for committed, _failed in hooks)
        if self._queue.empty():
            self._give_connection_back()  # before any caller returns: none sees it checked out
        for unit in batch:
            unit.done.set()
        if committed:
            self._report(len(batch), time.perf_counter() - started)

    def _report(self, units: int, seconds: float) -> None:
        try:
            self.on_commit(units, seconds)
        except Exception:  # a report must never stop the writer, whose callers would wait forever
            log.exception("on_commit failed")

    def _run_again(
        self, batch: list[_Unit[Any]], error: Exception, *, committing: bool, again: bool
    ) -> bool:
        """After a transaction failed: run the batch again where that is safe (True), or give
        each of its units the error (False)."""
        lost = _connection_lost(error) or bool(self._connection and self._connection.invalidated)
        self._give_connection_back()  # the next transaction starts on a checked connection
        if (lost or _deadlocked(error)) and not (committing or again):
            self._commit(batch, again=True)
            return True
        if len(batch) > 1 and not (committing and lost):
            for unit in batch:
                self._commit([unit])
            return True
        for unit in batch:
            unit.result, unit.error = None, error
        return False


def _runs(batch: list[_Unit[Any]]) -> Iterator[list[_Unit[Any]]]:
    """The batch in order, as runs of consecutive units that share a ``together`` function;
    every other unit is a run of its own."""
    run: list[_Unit[Any]] = []
    for unit in batch:
        if run and (unit.together is None or unit.together != run[0].together):
            yield run
            run = []
        run.append(unit)
    if run:
        yield run


def _run(conn: Connection, units: list[_Unit[Any]]) -> None:
    if units[0].together is None:
        [unit] = units
        unit.result = unit.work(conn)  # type: ignore[misc]
        return
    answers = units[0].together(conn, [unit.item for unit in units])
    for unit, answer in zip(units, answers, strict=True):
        refused = isinstance(answer, Exception)
        unit.result, unit.error = (None, answer) if refused else (answer, None)


def _call(callbacks: Iterator[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a callback must never stop the writer, whose callers would wait
            log.exception("a group-commit outcome callback failed")


def _deadlocked(error: Exception) -> bool:
    """Whether PostgreSQL ended the transaction to break a deadlock (nothing was kept)."""
    return isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) == "40P01"


def _connection_lost(error: Exception) -> bool:
    """Whether the driver reported the connection gone (SQLAlchemy invalidates it)."""
    return isinstance(error, DBAPIError) and error.connection_invalidated
