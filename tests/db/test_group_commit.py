"""Group commit: shared transactions, isolated failures, durable acknowledgements."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from healthcare.audit import trail
from healthcare.db.group_commit import GroupCommit
from healthcare.db.models import patients
from healthcare.errors import Conflict
from tests.conftest import queued_behind_a_held_writer, wait_until


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


def _one_then_another(
    writer: GroupCommit, first: Callable[[Connection], Any], then: Callable[[Connection], Any]
) -> tuple[Any, Any]:
    """``first``, and ``then`` queued while ``first`` runs: two transactions one after the
    other, the writer busy between them. Their results."""
    started, release = threading.Event(), threading.Event()

    def blocking(conn: Connection) -> Any:
        result = first(conn)
        started.set()
        release.wait(5)
        return result

    with ThreadPoolExecutor(2) as pool:
        earlier = pool.submit(writer.run, blocking)
        assert started.wait(5)
        later = pool.submit(writer.run, then)
        wait_until(lambda: writer._queue.qsize() == 1, timeout=10, what="the next write queued")
        release.set()
        return earlier.result(10), later.result(10)


def test_the_writer_keeps_its_connection_while_writes_keep_coming(engine: Engine) -> None:
    """Transactions that follow one another without a pause share one connection (on SQLite,
    its page cache; on PostgreSQL, no checkout and check per commit); once no write waits it
    goes back to the pool, before any caller has its answer."""
    checkouts: list[object] = []
    event.listen(engine, "checkout", lambda *_args: checkouts.append(1))
    writer = GroupCommit(engine)
    first, second = _one_then_another(writer, _driver_connection, _driver_connection)
    assert first is second
    assert len(checkouts) == 1
    assert writer._connection is None
    writer.run(_insert("Later"))
    assert len(checkouts) == 2
    writer.close()
    assert _count(engine) == 1


def _end_connection(engine: Engine, backend_pid: int) -> None:
    """End another connection's server process, and wait until it is gone."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid})
        for _ in range(100):
            alive = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend_pid}
            ).scalar_one()
            if not alive:
                return
            time.sleep(0.05)


def _backend_pid(conn: Connection) -> int:
    return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def _note_backend_pid(pids: list[int]) -> Callable[[Connection], None]:
    return lambda conn: pids.append(_backend_pid(conn))


def test_a_write_whose_connection_was_lost_before_commit_runs_again_on_a_new_one(
    engine: Engine,
) -> None:
    """The server ended the writer's kept connection between two transactions (a restart,
    an administrator): the next write is not lost to it, it commits on a new connection. With
    the audit trail's batching around each transaction, as the app runs it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a server that ends connections is PostgreSQL's; a SQLite file has none")
    pids: list[int] = []

    def end_the_writers_connection(_units: int, _seconds: float) -> None:
        if len(pids) == 1:
            _end_connection(engine, pids[0])
            pids.append(0)

    writer = GroupCommit(engine, around=trail.batched, on_commit=end_the_writers_connection)
    _, created = _one_then_another(writer, _note_backend_pid(pids), _insert("After the restart"))
    assert created > 0
    writer.close()
    assert _count(engine) == 1


def test_a_batch_whose_connection_was_lost_during_commit_is_not_run_again(
    engine: Engine,
) -> None:
    """Lost during COMMIT, a batch may have been committed: its units are not run again
    (that could store them twice); each caller gets the error."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a server that ends connections is PostgreSQL's; a SQLite file has none")
    runs: list[str] = []
    transactions: list[int] = []

    @contextmanager
    def end_the_connection_before_commit(conn: Connection) -> Iterator[None]:
        transactions.append(1)
        yield
        if len(transactions) == 2:  # the batch of two, after the blocker's transaction
            _end_connection(engine, _backend_pid(conn))

    writer = GroupCommit(engine, around=end_the_connection_before_commit)
    started, release = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> None:
        started.set()
        release.wait(5)

    def counted(name: str):
        def work(conn: Connection) -> int:
            runs.append(name)
            return _insert(name)(conn)

        return work

    with ThreadPoolExecutor(3) as pool:
        pool.submit(writer.run, blocker)
        assert started.wait(5)
        lost = [pool.submit(writer.run, counted(name)) for name in ("One", "Two")]
        wait_until(lambda: writer._queue.qsize() == 2, timeout=10, what="a batch of two")
        release.set()
        for future in lost:
            with pytest.raises(DBAPIError) as error:
                future.result(10)
            assert error.value.connection_invalidated
    assert runs == ["One", "Two"]
    assert writer.run(_insert("Next")) > 0
    writer.close()


def test_a_commit_that_failed_leaves_nothing_open_for_the_next_write(engine: Engine) -> None:
    """A deferred constraint fails at COMMIT (SQLite then keeps the transaction open): the
    writer does not carry that connection into the next write, which commits."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parents (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER"
            " REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    writer = GroupCommit(engine)
    started, release = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> None:
        started.set()
        release.wait(5)  # the failing write and the next one queue behind it

    def orphan(conn: Connection) -> None:
        conn.exec_driver_sql("INSERT INTO children (parent) VALUES (999)")

    with ThreadPoolExecutor(3) as pool:
        pool.submit(writer.run, blocker)
        assert started.wait(5)
        failing = pool.submit(writer.run, orphan)
        wait_until(lambda: writer._queue.qsize() == 1, timeout=10, what="the failing write")
        writer.max_batch = 1  # each in a transaction of its own
        following = pool.submit(writer.run, _insert("Innocent"))
        wait_until(lambda: writer._queue.qsize() == 2, timeout=10, what="the next write")
        release.set()
        with pytest.raises(IntegrityError):
            failing.result(10)
        assert following.result(10) > 0
    writer.close()
    assert _count(engine) == 1


def test_every_transaction_on_the_kept_connection_begins_as_a_writer(engine: Engine) -> None:
    """On SQLite a writer must take the write lock at BEGIN (see healthcare.db.engine), on the
    kept connection as on a fresh one."""
    if engine.dialect.name != "sqlite":
        pytest.skip("BEGIN IMMEDIATE is SQLite's; PostgreSQL's writers lock rows as they go")
    begins: list[str] = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_args: (
            begins.append(statement) if statement.startswith("BEGIN") else None
        ),
    )
    writer = GroupCommit(engine)
    _one_then_another(writer, _insert("First"), _insert("Kept"))
    writer.close()
    assert begins == ["BEGIN IMMEDIATE", "BEGIN IMMEDIATE"]


class _LockThatFailsToLetGo:
    """A process lock whose release fails once, after the given number of releases."""

    def __init__(self, failing_release: int) -> None:
        self.failing_release = failing_release
        self.releases = 0

    def __enter__(self) -> None:
        pass

    def __exit__(self, *_exc: object) -> None:
        self.releases += 1
        if self.releases == self.failing_release:
            raise OSError(37, "No locks available")  # flock(LOCK_UN) on a network filesystem


def test_a_batch_committed_before_its_lock_failed_to_let_go_is_answered_once(
    engine: Engine,
) -> None:
    """The commit went through and only the lock's release failed: each caller gets its
    write, which is stored once (not run again unit by unit, not reported as failed)."""
    writer = GroupCommit(engine, process_lock=_LockThatFailsToLetGo(failing_release=2))
    started, release = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> None:
        started.set()
        release.wait(5)

    with ThreadPoolExecutor(3) as pool:
        pool.submit(writer.run, blocker)
        assert started.wait(5)
        writes = [pool.submit(writer.run, _insert(f"Once {i}")) for i in range(2)]
        wait_until(lambda: writer._queue.qsize() == 2, timeout=10, what="a batch of two")
        release.set()
        assert all(write.result(10) > 0 for write in writes)
    writer.close()
    assert _count(engine) == 2


def test_only_transactions_that_committed_are_reported(engine: Engine) -> None:
    """The metrics' commit sizes and times count commits: a batch that failed and ran again
    unit by unit is reported as the commits that followed, not as one more."""
    reports: list[int] = []
    writer = GroupCommit(engine, on_commit=lambda units, _seconds: reports.append(units))

    def failing(conn: Connection) -> None:
        raise Conflict("no")

    with ThreadPoolExecutor(3) as pool:
        good, bad = queued_behind_a_held_writer(
            writer, pool, [lambda: writer.run(_insert("Kept")), lambda: writer.run(failing)]
        )
        assert good.result(10) > 0
        with pytest.raises(Conflict):
            bad.result(10)
    writer.close()
    assert reports == [1, 1]  # the blocker's commit, then "Kept" alone


def _insert_each(calls: list[list[str]]) -> Callable[[Connection, list[str]], list[Any]]:
    """A together function: one call per run of units, one row per name; a name starting
    with "Refused" is answered with Conflict and not stored; "Boom" fails the whole call."""

    def insert_each(conn: Connection, names: list[str]) -> list[Any]:
        calls.append(list(names))
        if "Boom" in names:
            raise RuntimeError("the call failed")
        return [
            Conflict(f"{name} refused") if name.startswith("Refused") else _insert(name)(conn)
            for name in names
        ]

    return insert_each


def test_units_of_one_kind_that_arrive_together_are_run_in_one_call(engine: Engine) -> None:
    """Consecutive units with the same function go to it together; a plain unit between
    them ends the run. Each caller gets its own item's answer."""
    calls: list[list[str]] = []
    writer = GroupCommit(engine)
    each = _insert_each(calls)
    names = ["A", "B", "C"]
    with ThreadPoolExecutor(6) as pool:
        futures = queued_behind_a_held_writer(
            writer,
            pool,
            [
                *(lambda n=n: writer.run_together(each, n) for n in names),
                lambda: writer.run(_insert("Plain")),
                lambda: writer.run_together(each, "D"),
            ],
        )
        ids = [f.result(10) for f in futures]
    assert calls == [["A", "B", "C"], ["D"]]
    with engine.connect() as conn:
        stored = dict(conn.execute(select(patients.c.id, patients.c.name)).all())
    assert [stored[i] for i in ids] == ["A", "B", "C", "Plain", "D"]


@pytest.mark.parametrize(
    ("middle", "error", "calls_made"),
    [
        # A refusal is an answer, not a failure: the transaction commits the others, once.
        ("Refused", Conflict, [["A", "Refused", "B"]]),
        # A call that raises fails its transaction: each item runs again alone.
        ("Boom", RuntimeError, [["A", "Boom", "B"], ["A"], ["Boom"], ["B"]]),
    ],
)
def test_only_the_item_that_fails_gets_the_error(
    engine: Engine, middle: str, error: type[Exception], calls_made: list[list[str]]
) -> None:
    calls: list[list[str]] = []
    writer = GroupCommit(engine)
    each = _insert_each(calls)
    with ThreadPoolExecutor(5) as pool:
        futures = queued_behind_a_held_writer(
            writer, pool, [lambda n=n: writer.run_together(each, n) for n in ("A", middle, "B")]
        )
        assert all(futures[i].result(10) for i in (0, 2))
        with pytest.raises(error):
            futures[1].result(10)
    assert calls == calls_made
    assert _count(engine) == 2


def test_a_transaction_ended_to_break_a_deadlock_runs_again(engine: Engine) -> None:
    """PostgreSQL ends one of two transactions that wait for each other's locks: nothing of
    it was kept, so its unit runs once more (after the other commits) instead of failing."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: its transactions never wait in a cycle")
    both_hold_one = threading.Barrier(2, timeout=10)
    attempts: list[str] = []

    def locking(first: int, then: int, name: str) -> Callable[[Connection], str]:
        def work(conn: Connection) -> str:
            attempts.append(name)
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({first})")
            if attempts.count(name) == 1:
                both_hold_one.wait()
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({then})")
            return name

        return work

    one, other = GroupCommit(engine), GroupCommit(engine)  # two server processes' writers
    with ThreadPoolExecutor(2) as pool:
        results = [
            pool.submit(one.run, locking(71, 72, "one")),
            pool.submit(other.run, locking(72, 71, "other")),
        ]
        assert sorted(f.result(30) for f in results) == ["one", "other"]
    assert sorted(attempts) in (["one", "one", "other"], ["one", "other", "other"])
