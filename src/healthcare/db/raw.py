"""The hottest statements, run straight on the driver's cursor.

SQLAlchemy's execution path costs about 100 µs a statement here, more than the query itself;
a patient by id, a page of patients or the insert of a new one cannot afford that on every
request. The statements are still built with SQLAlchemy Core, compiled once per database
dialect, and run with bound parameters, passed through the column types' own bind processors
(so a datetime is stored exactly as SQLAlchemy stores it). Everything else uses Core."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, Engine, Table, bindparam, insert
from sqlalchemy.sql.expression import Executable


class _Compiled(NamedTuple):
    sql: str
    order: tuple[str, ...] | None
    literals: dict[str, Any]  # values SQLAlchemy bound itself, e.g. the text search config
    processors: dict[str, Callable[[Any], Any]]


class RawStatement:
    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, engine: Engine) -> _Compiled:
        dialect = engine.dialect
        if dialect.name not in self._compiled:
            compiled = self.statement.compile(dialect=dialect)
            order = tuple(compiled.positiontup or ()) if dialect.positional else None
            literals = {k: v for k, v in compiled.params.items() if v is not None}
            processors = {
                name: processor
                for name, bind in compiled.binds.items()
                if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))
                is not None
            }
            self._compiled[dialect.name] = _Compiled(str(compiled), order, literals, processors)
        return self._compiled[dialect.name]

    def arguments(self, engine: Engine, params: dict[str, Any]) -> tuple[str, Any]:
        compiled = self._for(engine)
        values = {**compiled.literals, **params} if compiled.literals else params
        processors = compiled.processors
        if compiled.order is not None:
            return compiled.sql, tuple(
                processors[name](values[name]) if name in processors else values[name]
                for name in compiled.order
            )
        if processors:
            values = {
                name: processors[name](value) if name in processors else value
                for name, value in values.items()
            }
        return compiled.sql, values


class Readers(Protocol):
    """Where raw reads get a driver connection, and give it back."""

    engine: Engine

    def checkout(self) -> Any: ...
    def checkin(self, connection: Any, *, failed: bool) -> None: ...
    def close(self) -> None: ...


class PooledReaders:
    """Reads on connections from the engine's pool (PostgreSQL: a server can drop them, and
    the pool checks them before use and ends each read's transaction)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def checkout(self) -> Any:
        return self.engine.raw_connection()

    def checkin(self, connection: Any, *, failed: bool) -> None:
        connection.close()

    def close(self) -> None:
        """Nothing kept here: disposing of the engine closes the pool."""


class ThreadReaders(threading.local):
    """SQLite: each thread keeps one connection of its own for raw reads.

    A pool checkout and return (with its reset) cost more than reading a patient by id. A
    SQLite connection is a local file handle that no server can drop, and in autocommit mode a
    read leaves no transaction open, so nothing carries from one read to the next. A read that
    fails gives its connection up; a thread that ends closes it; a forked process opens its own
    and leaves its parent's alone."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: Any = None
        self.pid = 0
        self._closer: weakref.finalize | None = None

    def checkout(self) -> Any:
        if self.pid != os.getpid():
            self._forget()
        if self.connection is None:
            connection = self.engine.raw_connection()
            connection.detach()  # closed, not pooled, when given up
            self._closer = weakref.finalize(threading.current_thread(), connection.close)
            self.connection, self.pid = connection, os.getpid()
        return self.connection

    def checkin(self, connection: Any, *, failed: bool) -> None:
        if failed:
            self.close()

    def close(self) -> None:
        """Close this thread's connection (the others close with their threads)."""
        if self._closer is not None and self.pid == os.getpid():
            self._closer()  # runs at most once
        self._forget()

    def _forget(self) -> None:
        if self._closer is not None:
            self._closer.detach()
        self.connection, self._closer = None, None


def readers_for(engine: Engine) -> Readers:
    return ThreadReaders(engine) if engine.dialect.name == "sqlite" else PooledReaders(engine)


def fetch(
    readers: Readers, *statements: tuple[RawStatement, dict[str, Any]]
) -> list[list[tuple[Any, ...]]]:
    """Run each (statement, parameters) on one connection; rows come back as tuples in the
    order of the statement's columns."""
    connection = readers.checkout()
    failed = True
    try:
        cursor = connection.cursor()
        results = []
        for statement, params in statements:
            cursor.execute(*statement.arguments(readers.engine, params))
            results.append(cursor.fetchall())
        cursor.close()
        failed = False
    finally:
        readers.checkin(connection, failed=failed)
    return results


@contextmanager
def _cursor_in(conn: Connection) -> Iterator[Any]:
    """A driver cursor inside ``conn``'s open transaction."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    finally:
        cursor.close()


def fetch_in(
    conn: Connection, statement: RawStatement, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Run a statement inside ``conn``'s open transaction; the rows it returns."""
    with _cursor_in(conn) as cursor:
        cursor.execute(*statement.arguments(conn.engine, params))
        return cursor.fetchall()


def fetch_one_in(conn: Connection, statement: RawStatement, params: dict[str, Any]) -> Any:
    """Run a statement inside ``conn``'s open transaction; the first row it returns."""
    rows = fetch_in(conn, statement, params)
    return rows[0] if rows else None


def execute_in(conn: Connection, statement: RawStatement, params: dict[str, Any]) -> None:
    """Run a statement inside ``conn``'s open transaction."""
    with _cursor_in(conn) as cursor:
        cursor.execute(*statement.arguments(conn.engine, params))


# On psycopg, rows this narrow (the audit's disclosures) go in 64 to a statement at 7.6 µs a
# row against 14.8 through executemany; rows of 7 columns take 15.7 µs through executemany
# against 19.5 in statements of 64, 30 columns 24 against 92-119 (measured, PostgreSQL 15).
NARROW_ROW = 2


class MultiRowInsert:
    """An INSERT of many rows at once, each row a tuple in ``columns`` order.

    Row counts go in chunks of ``CHUNK_SIZES``: one statement (so one release of the
    interpreter lock around the database's work) for many rows. Rows are flattened straight
    into the driver's positional arguments where the dialect takes them, instead of through
    a dictionary of thousands of numbered names."""

    CHUNK_SIZES = (64, 16, 4, 1)

    def __init__(self, table: Table, columns: tuple[str, ...]) -> None:
        self.columns = columns
        # A compiled INSERT lists its columns in the table's order, whatever the rows' order.
        self._table_order = tuple(c.key for c in table.c if c.key in columns)
        self._positions = [columns.index(name) for name in self._table_order]
        self._statements = {size: self._statement(table, size) for size in self.CHUNK_SIZES}
        self._flat: dict[tuple[str, int], list[Callable[[Any], Any] | None] | None] = {}

    def _statement(self, table: Table, size: int) -> RawStatement:
        rows = [
            {name: bindparam(f"{name}_{i}", type_=table.c[name].type) for name in self.columns}
            for i in range(size)
        ]
        return RawStatement(insert(table).values(rows))

    def run(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        width = len(self.columns)
        if any(len(row) != width for row in rows):  # placed by position: a stray value would shift
            raise ValueError(f"each row must have {width} values: {', '.join(self.columns)}")
        with _cursor_in(conn) as cursor:
            if (
                len(rows) > 1  # one row: one statement (executemany's pipeline costs 20 µs)
                and len(self.columns) > NARROW_ROW
                and self._flat_processors(conn.engine, 1) is None
            ):
                # Named parameters (psycopg): converting a statement of hundreds of names
                # costs more than running it. The one-row statement, converted once, goes
                # to the driver's executemany, which pipelines the rows.
                sql = self._statements[1]._for(conn.engine).sql
                cursor.executemany(sql, [self._arguments(conn.engine, 1, [row])[1] for row in rows])
                return
            start = 0
            for size in self.CHUNK_SIZES:
                while len(rows) - start >= size:
                    chunk = rows[start : start + size]
                    cursor.execute(*self._arguments(conn.engine, size, chunk))
                    start += size

    def _arguments(self, engine: Engine, size: int, rows: list[tuple[Any, ...]]) -> tuple[str, Any]:
        statement = self._statements[size]
        processors = self._flat_processors(engine, size)
        if processors is None:
            named = {f"{name}_{i}": value for i, row in enumerate(rows)
                     for name, value in zip(self.columns, row, strict=True)}  # fmt: skip
            return statement.arguments(engine, named)
        positions = self._positions
        return statement._for(engine).sql, [
            processor(row[position]) if processor else row[position]
            for row in rows
            for position, processor in zip(positions, processors, strict=True)
        ]

    def _flat_processors(
        self, engine: Engine, size: int
    ) -> list[Callable[[Any], Any] | None] | None:
        """Each column's bind processor when the statement takes its values positionally, row
        after row in the table's column order; None when it does not (named parameters)."""
        key = (engine.dialect.name, size)
        if key not in self._flat:
            compiled = self._statements[size]._for(engine)
            flat = tuple(f"{name}_{i}" for i in range(size) for name in self._table_order)
            self._flat[key] = (
                [compiled.processors.get(f"{name}_0") for name in self._table_order]
                if compiled.order == flat and not compiled.literals
                else None
            )
        return self._flat[key]
