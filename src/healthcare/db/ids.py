"""Ids taken before the rows that carry them are inserted, so that a row whose other columns
depend on its id (a patient's record number) goes in whole, in one statement for many rows."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Connection, Table, column, func, select, table, text

from healthcare.db.raw import RawStatement, fetch_in, fetch_one_in

POSTGRES_NEXT = RawStatement(
    text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)")
)


SQLITE_SEQUENCE = table("sqlite_sequence", column("name"), column("seq"))


@cache
def _sqlite_top(of: Table) -> RawStatement:
    """The highest id ``of`` has ever used (its AUTOINCREMENT sequence, or its rows')."""
    sequence = select(SQLITE_SEQUENCE.c.seq).where(SQLITE_SEQUENCE.c.name == of.name)
    highest = select(func.max(of.c.id))
    return RawStatement(
        select(
            func.max(
                func.coalesce(sequence.scalar_subquery(), 0),
                func.coalesce(highest.scalar_subquery(), 0),
            )
        )
    )


def reserve_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """``count`` ids for new rows of ``table`` (an ``AUTOINCREMENT`` integer ``id`` on SQLite,
    a serial one on PostgreSQL), ascending, never handed out before and never again.

    On SQLite the caller's write transaction holds the database's write lock (``BEGIN
    IMMEDIATE``): the ids after the highest ever used are free until it commits, and
    inserting them moves the table's sequence past them. On PostgreSQL they come from the
    column's sequence, as a default would take them. Run on the driver's cursor: a single
    create takes one id, and SQLAlchemy's execution path cost more than the query."""
    if conn.dialect.name == "sqlite":
        (top,) = fetch_one_in(conn, _sqlite_top(table), {})
        return list(range(top + 1, top + 1 + count))
    taken = fetch_in(conn, POSTGRES_NEXT, {"table": table.name, "count": count})
    return sorted(taken_id for (taken_id,) in taken)
