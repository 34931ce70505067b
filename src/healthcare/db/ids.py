"""Ids taken before the rows that carry them are inserted, so that a row whose other columns
depend on its id (a patient's record number) goes in whole, in one statement for many rows."""

from __future__ import annotations

from sqlalchemy import Connection, Table, text

SQLITE_TOP = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = :table), 0), "
    "coalesce((SELECT max(id) FROM {table}), 0))"
)
POSTGRES_NEXT = (
    "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"
)


def reserve_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """``count`` ids for new rows of ``table`` (an ``AUTOINCREMENT`` integer ``id`` on SQLite,
    a serial one on PostgreSQL), ascending, never handed out before and never again.

    On SQLite the caller's write transaction holds the database's write lock (``BEGIN
    IMMEDIATE``): the ids after the highest ever used are free until it commits, and
    inserting them moves the table's sequence past them. On PostgreSQL they come from the
    column's sequence, as a default would take them."""
    if conn.dialect.name == "sqlite":
        top = conn.execute(
            text(SQLITE_TOP.format(table=table.name)), {"table": table.name}
        ).scalar_one()
        return list(range(top + 1, top + 1 + count))
    taken = conn.execute(text(POSTGRES_NEXT), {"table": table.name, "count": count}).scalars()
    return sorted(taken)
