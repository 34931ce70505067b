"""Group commit: shared transactions, isolated failures, durable acknowledgements."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection, Engine, event, func, insert, select

from healthcare.db.group_commit import GroupCommit
from healthcare.db.models import patients
from healthcare.errors import Conflict
from tests.conftest import wait_until


def _insert(name: str):
    def work(conn: Connection) -> int:
        row = {"name": name, "name_search": name.lower(), "age": 1, "version": 1,
               "created_at": func.now(), "updated_at": func.now()}  # fmt: skip
        return conn.execute(insert(patients).values(row)).inserted_primary_key[0]

    return work


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(patients)).scalar_one()


def test_units_from_many_threads_all_commit(engine: Engine) -> None:
    writer = GroupCommit(engine)
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda i: writer.run(_insert(f"P{i}")), range(300)))
    assert len(set(ids)) == 300
    assert _count(engine) == 300


def test_a_failing_unit_is_rolled_back_alone(engine: Engine) -> None:
    writer = GroupCommit(engine)
    started, release = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> None:
        started.set()
        release.wait(5)  # hold the writer so the next units queue up as one batch

    def failing(conn: Connection) -> None:
        _insert("Doomed")(conn)
        raise Conflict("no")

    with ThreadPoolExecutor(8) as pool:
        pool.submit(writer.run, blocker)
        assert started.wait(5)
        good = [pool.submit(writer.run, _insert(f"Kept {i}")) for i in range(3)]
        bad = pool.submit(writer.run, failing)
        wait_until(lambda: writer._queue.qsize() == 4, timeout=10, what="one batch of four")
        release.set()
        assert all(f.result(10) for f in good)
        with pytest.raises(Conflict):
            bad.result(10)
    with engine.connect() as conn:
        names = set(conn.execute(select(patients.c.name)).scalars())
    assert names == {"Kept 0", "Kept 1", "Kept 2"}


def test_a_lone_failing_unit_raises_and_writes_nothing(engine: Engine) -> None:
    writer = GroupCommit(engine)

    def failing(conn: Connection) -> None:
        _insert("Doomed")(conn)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        writer.run(failing)
    assert _count(engine) == 0
    assert writer.run(_insert("After")) > 0


def test_close_ends_the_writer_thread_after_the_queued_writes(engine: Engine) -> None:
    """A process that forks after using the database (the server's parent) has no thread."""
    writer = GroupCommit(engine)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: writer.run(_insert(f"Before close {i}")), range(20)))
    thread = next(t for t in threading.enumerate() if t is writer._writer)
    writer.close()
    assert not thread.is_alive()
    assert _count(engine) == 20
    writer.run(_insert("After close"))  # a later write starts a writer again
    assert _count(engine) == 21
    writer.close()


def test_writes_of_requests_that_arrive_together_share_one_commit(engine: Engine) -> None:
    """Writes that arrive while the writer commits wait together and commit together."""
    batches: list[int] = []

    @contextmanager
    def counted(_conn: Connection) -> Iterator[None]:
        batches.append(writer._queue.qsize())
        yield

    writer = GroupCommit(engine, around=counted)
    started, release = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> None:
        started.set()
        release.wait(5)

    def request(i: int) -> int:
        return writer.run(_insert(f"Request {i}"))

    with ThreadPoolExecutor(5) as pool:
        pool.submit(writer.run, blocker)
        assert started.wait(5)
        requests = [pool.submit(request, i) for i in range(4)]
        deadline = time.monotonic() + 5
        while writer._queue.qsize() < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer._queue.qsize() == 4
        release.set()
        assert all(f.result(10) for f in requests)
    assert len(batches) == 2  # the blocker's transaction, then the four requests' one
    assert _count(engine) == 4


def test_a_failing_commit_report_neither_stops_the_writer_nor_its_callers(engine: Engine) -> None:
    """``on_commit`` is a report (the metrics): if it fails, the write is still answered and
    the next write is still committed (a writer thread that died left its callers waiting)."""

    def broken_report(_units: int, _seconds: float) -> None:
        raise ValueError("the report failed")

    writer = GroupCommit(engine, on_commit=broken_report)
    assert writer.run(_insert("First")) > 0
    assert writer.run(_insert("Second")) > 0
    assert _count(engine) == 2
    writer.close()


def test_a_write_racing_a_close_is_still_committed(engine: Engine) -> None:
    """A write that arrives while close() stops the writer runs on a new writer, never behind
    the stop (where it waited forever: seen as a command that hung at exit)."""
    writer = GroupCommit(engine)
    for round_ in range(20):
        with ThreadPoolExecutor(2) as pool:
            closing = pool.submit(writer.close)
            writing = pool.submit(writer.run, _insert(f"Racing {round_}"))
            closing.result(10)
            assert writing.result(10) > 0
    assert _count(engine) == 20
    writer.close()


def _driver_connection(conn: Connection) -> object:
    return conn.connection.driver_connection


def test_the_writer_keeps_its_connection_while_writes_keep_coming(engine: Engine) -> None:
    """Transactions that follow one another without a pause share one connection (on SQLite,
    its page cache; on PostgreSQL, no checkout and check per commit); once no write waits it
    goes back to the pool, before any caller has its answer."""
    checkouts: list[object] = []
    event.listen(engine, "checkout", lambda *_args: checkouts.append(1))
    writer = GroupCommit(engine)
    started, release = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> object:
        started.set()
        release.wait(5)  # the next write queues behind this transaction
        return _driver_connection(conn)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(writer.run, blocker)
        assert started.wait(5)
        second = pool.submit(writer.run, _driver_connection)
        wait_until(lambda: writer._queue.qsize() == 1, timeout=10, what="the next write queued")
        release.set()
        assert first.result(10) is second.result(10)
    assert len(checkouts) == 1
    assert writer._connection is None
    writer.run(_insert("Later"))
    assert len(checkouts) == 2
    writer.close()
    assert _count(engine) == 1
