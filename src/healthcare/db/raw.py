"""The hottest statements, run straight on the driver's cursor.

SQLAlchemy's execution path costs about 100 µs a statement here, more than the query itself;
a patient by id, a page of patients or the insert of a new one cannot afford that on every
request. The statements are still built with SQLAlchemy Core, compiled once per database
dialect, and run with bound parameters, passed through the column types' own bind processors
(so a datetime is stored exactly as SQLAlchemy stores it). Everything else uses Core."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine
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


def fetch(
    engine: Engine, *statements: tuple[RawStatement, dict[str, Any]]
) -> list[list[tuple[Any, ...]]]:
    """Run each (statement, parameters) on one pooled connection; rows come back as tuples in
    the order of the statement's columns."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        results = []
        for statement, params in statements:
            cursor.execute(*statement.arguments(engine, params))
            results.append(cursor.fetchall())
        cursor.close()
    finally:
        connection.close()
    return results


def fetch_one_in(conn: Connection, statement: RawStatement, params: dict[str, Any]) -> Any:
    """Run a statement inside ``conn``'s open transaction; the first row it returns."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(*statement.arguments(conn.engine, params))
        return cursor.fetchone()
    finally:
        cursor.close()


def execute_many_in(conn: Connection, statement: RawStatement, rows: list[dict[str, Any]]) -> None:
    """Run a statement once per row inside ``conn``'s open transaction."""
    arguments = [statement.arguments(conn.engine, row) for row in rows]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(arguments[0][0], [values for _sql, values in arguments])
    finally:
        cursor.close()
