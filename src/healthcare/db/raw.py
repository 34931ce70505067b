"""The hottest reads, run straight on the driver's cursor.

SQLAlchemy's execution path costs about 100 µs a statement here, more than the query itself;
a patient by id or a page of patients cannot afford that on every request. The statements are
still built with SQLAlchemy Core, compiled once per database dialect, and run with bound
parameters only. Writes keep the full Core path and its transactions."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Engine, Select


class RawSelect:
    def __init__(self, statement: Select) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, engine: Engine) -> _Compiled:
        dialect = engine.dialect
        if dialect.name not in self._compiled:
            compiled = self.statement.compile(dialect=dialect)
            order = tuple(compiled.positiontup or ()) if dialect.positional else None
            literals = {k: v for k, v in compiled.params.items() if v is not None}
            self._compiled[dialect.name] = _Compiled(str(compiled), order, literals)
        return self._compiled[dialect.name]

    def arguments(self, engine: Engine, params: dict[str, Any]) -> tuple[str, Any]:
        compiled = self._for(engine)
        values = {**compiled.literals, **params} if compiled.literals else params
        if compiled.order is None:
            return compiled.sql, values
        return compiled.sql, tuple(values[name] for name in compiled.order)


class _Compiled(NamedTuple):
    sql: str
    order: tuple[str, ...] | None
    literals: dict[str, Any]  # values SQLAlchemy bound itself, e.g. the text search config


def fetch(
    engine: Engine, *selects: tuple[RawSelect, dict[str, Any]]
) -> list[list[tuple[Any, ...]]]:
    """Run each (statement, parameters) on one pooled connection; rows come back as tuples in
    the order of the statement's columns."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        results = []
        for select, params in selects:
            cursor.execute(*select.arguments(engine, params))
            results.append(cursor.fetchall())
        cursor.close()
    finally:
        connection.close()
    return results
