"""The raw paths: SQLite reads keep one connection per thread, PostgreSQL reads use the pool;
many rows go in with one statement."""

from __future__ import annotations

import gc
import multiprocessing
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    literal_column,
    select,
)

from healthcare import clock
from healthcare.audit import trail
from healthcare.db import migrate, raw
from healthcare.db.engine import create_db_engine
from healthcare.patients import queries

ONE = raw.RawStatement(select(literal_column("1")))
BROKEN = raw.RawStatement(select(literal_column("no_such_column")))


@pytest.fixture
def readers(tmp_path: Path) -> Iterator[raw.ThreadReaders]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate.upgrade(engine)
    readers = raw.readers_for(engine)
    assert isinstance(readers, raw.ThreadReaders)
    yield readers
    readers.close()
    engine.dispose()


def _read(readers: raw.ThreadReaders, statement: raw.RawStatement = ONE) -> object:
    [rows] = raw.fetch(readers, (statement, {}))
    return rows


def test_a_thread_keeps_its_connection_and_other_threads_have_their_own(
    readers: raw.ThreadReaders,
) -> None:
    assert _read(readers) == [(1,)]
    mine = readers.connection
    _read(readers)
    assert readers.connection is mine
    theirs: list[object] = []

    def other_thread() -> None:
        _read(readers)
        theirs.append(readers.connection)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert theirs[0] is not None
    assert theirs[0] is not mine


def test_a_thread_that_ends_closes_its_connection(readers: raw.ThreadReaders) -> None:
    drivers: list[sqlite3.Connection] = []

    def short_lived() -> None:
        _read(readers)
        drivers.append(readers.connection.dbapi_connection)

    thread = threading.Thread(target=short_lived)
    thread.start()
    thread.join()
    del thread
    gc.collect()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        drivers[0].execute("SELECT 1")


def test_a_failed_read_gives_up_its_connection(readers: raw.ThreadReaders) -> None:
    _read(readers)
    before, driver = readers.connection, readers.connection.dbapi_connection
    with pytest.raises(sqlite3.OperationalError):
        _read(readers, BROKEN)
    assert readers.connection is None
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        driver.execute("SELECT 1")
    assert _read(readers) == [(1,)]
    assert readers.connection is not before


def test_reads_see_what_other_connections_commit(readers: raw.ThreadReaders) -> None:
    """A kept connection holds no transaction open between reads, so no stale snapshot."""
    revision = (queries.revision, {})
    [[(first,)]] = raw.fetch(readers, revision)
    with readers.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE patient_totals SET revision = revision + 1 WHERE id = 1")
    [[(second,)]] = raw.fetch(readers, revision)
    assert second == first + 1


def _read_in_child(readers: raw.ThreadReaders, parent_connection: object) -> None:
    assert _read(readers) == [(1,)]
    assert readers.connection is not parent_connection
    readers.close()  # closes the child's own connection, not the parent's


def test_a_forked_process_opens_its_own_connection(readers: raw.ThreadReaders) -> None:
    _read(readers)
    child = multiprocessing.get_context("fork").Process(
        target=_read_in_child, args=(readers, readers.connection)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert _read(readers) == [(1,)]  # the parent's connection still works


def test_postgresql_reads_use_the_pool(database_url: str) -> None:
    engine = create_db_engine(database_url)
    readers = raw.readers_for(engine)
    expected = raw.ThreadReaders if engine.dialect.name == "sqlite" else raw.PooledReaders
    assert isinstance(readers, expected)
    assert raw.fetch(readers, (ONE, {})) == [[(1,)]]
    engine.dispose()


@pytest.fixture
def scratch(database_url: str) -> Iterator[tuple[Engine, Table]]:
    """A table of its own (an id, a time, a label) on the test's database, dropped after."""
    engine = create_db_engine(database_url)
    metadata = MetaData()
    table = Table(
        f"scratch_{uuid.uuid4().hex[:8]}",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("at", DateTime(timezone=True)),
        Column("label", String(20)),
    )
    metadata.create_all(engine)
    try:
        yield engine, table
    finally:
        metadata.drop_all(engine)
        engine.dispose()


@pytest.mark.parametrize(
    "columns",
    [("id", "at", "label"), ("id", "at"), ("label", "id", "at")],
    ids=["wide", "narrow", "not-in-table-order"],
)
@pytest.mark.parametrize("count", [0, 1, 3, 64, 85, 200])
def test_a_multi_row_insert_writes_every_row_as_given(
    scratch: tuple[Engine, Table], count: int, columns: tuple[str, ...]
) -> None:
    """Chunks of every size (85 = 64 + 16 + 4 + 1), a processed type (the time), nulls; rows
    wider than NARROW_ROW and rows that narrow (on psycopg the first go through executemany,
    the second in multi-row statements); rows whose values come in another order than the
    table's columns (the statement lists them in the table's order)."""
    engine, table = scratch
    start = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)
    full = [
        {"id": i, "at": start + timedelta(seconds=i), "label": None if i % 3 else f"row {i}"}
        for i in range(count)
    ]
    rows = [tuple(row[name] for name in columns) for row in full]
    with engine.begin() as conn:
        raw.MultiRowInsert(table, columns).run(conn, rows)
    with engine.connect() as conn:
        stored = conn.execute(select(*(table.c[name] for name in columns)).order_by(table.c.id))
        found = [tuple(_as_given(name, value) for name, value in zip(columns, row, strict=True))
                 for row in stored]  # fmt: skip
    assert found == rows


@pytest.mark.parametrize("width", [2, 4], ids=["short", "long"])
def test_a_multi_row_insert_refuses_a_row_of_the_wrong_width(
    scratch: tuple[Engine, Table], width: int
) -> None:
    """Values go in by position: a row with a value too many or too few is refused, not
    written shifted or cut (the audit's rows are built apart from its column list)."""
    engine, table = scratch
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    rows = [("a", 1, at), ("b", 2, at, "stray")[:width]]  # label, id, at
    with pytest.raises(ValueError, match="each row must have 3 values"), engine.begin() as conn:
        raw.MultiRowInsert(table, ("label", "id", "at")).run(conn, rows)
    with engine.connect() as conn:
        assert conn.execute(select(table.c.id)).all() == []


def _as_given(name: str, value: object) -> object:
    return clock.as_utc(value) if name == "at" else value  # type: ignore[arg-type]


def test_sqlite_rows_in_another_order_than_the_table_still_go_in_as_positional_values(
    tmp_path: Path,
) -> None:
    """The audit trail's rows list token_id before hash, its table after: such rows go in as
    positional values too, not through a dictionary of numbered names (which cost a flush of
    read events 80 rather than 65 µs of CPU an event)."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'h.db'}")
    assert trail.INSERT.columns != trail.INSERT._table_order
    assert trail.INSERT._flat_processors(engine, 64) is not None
    engine.dispose()
