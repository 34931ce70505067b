"""Copy every record from one database to another (the upgrade path from SQLite to PostgreSQL).

The target must be empty. Its schema is brought to the head revision, then every table (users,
API tokens, browser sessions, patients with their identifiers and versions, the audit trail
with the patients each listing disclosed) is copied row for row, ids kept, in one
target transaction (a failure leaves the target as empty as it was). The audit chain head and
the id sequences move with them, so ids are never handed out twice on the target either.
Afterwards the copy is checked against the source: every table's row count and a digest of its
contents, the patient totals, and the audit chain, walked from its first row on the target."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table, func, select, text

from healthcare import clock
from healthcare.audit import trail
from healthcare.db import migrate
from healthcare.db.engine import write_transaction
from healthcare.db.models import (
    api_tokens,
    audit_chain,
    audit_disclosures,
    audit_events,
    patient_identifiers,
    patient_total,
    patient_totals,
    patient_versions,
    patients,
    user_sessions,
    users,
)
from healthcare.db.raw import MultiRowInsert
from healthcare.errors import Conflict

# Every table, rows and all, except the two one-row tables the copy sets itself (the totals,
# kept by triggers as the patients go in, and the chain head). Parents before children.
COPIED_TABLES = (
    users, api_tokens, user_sessions, patients, patient_identifiers, patient_versions,
    audit_events, audit_disclosures,
)  # fmt: skip
DERIVED_TABLES = (patient_totals, audit_chain)
SEQUENCED_TABLES = (users, api_tokens, patients, patient_identifiers)
BATCH_ROWS = 2000


class CopyRefused(Conflict):
    """The databases are not in a state to copy between, or the copy does not match."""


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]
    audit_rows: int


def copy_database(source: Engine, target: Engine) -> CopyReport:
    """Copy ``source`` into the empty ``target`` and verify the copy against it."""
    _require_current_schema(source)
    source_key = trail.key_for(source)
    if source_key is not None and trail.key_for(target) is None:
        trail.use_key(target, source_key)  # the copy is verified with the key it was written with
    migrate.upgrade(target)
    _require_empty(target)
    with _snapshot(source) as reading, write_transaction(target) as writing:
        for table in COPIED_TABLES:
            _copy_rows(reading, writing, table)
        _copy_chain_head(reading, writing)
        for table in SEQUENCED_TABLES:
            _set_next_id(writing, table, _last_id_given(reading, table))
        expected = _fingerprint(reading)
    return _verify(target, expected)


def _require_current_schema(source: Engine) -> None:
    revision, head = migrate.current_revision(source), migrate.head_revision()
    if revision != head:
        raise CopyRefused(
            f"the source database is at schema {revision or 'empty'}, not {head}: "
            "run `healthcare db upgrade` on it first"
        )


def _require_empty(target: Engine) -> None:
    with target.connect() as conn:
        filled = [t.name for t in COPIED_TABLES if conn.execute(_count(t)).scalar_one()]
        chained = conn.execute(select(audit_chain.c.last_id)).scalar_one()
    if filled or chained:
        raise CopyRefused(
            f"the target database is not empty ({', '.join(filled) or 'audit chain'} "
            "holds records): copy only into a new, empty database"
        )


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One consistent view of the source for the whole copy, even if something still writes."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":  # the driver's transaction control is off
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("ROLLBACK")
            return
        with conn.execution_options(isolation_level="REPEATABLE READ").begin():
            yield conn


def _ordered(table: Table) -> Any:
    return select(table).order_by(*table.primary_key.columns)


def _count(table: Table) -> Any:
    return select(func.count()).select_from(table)


def _rows(conn: Connection, table: Table) -> Iterator[list[dict[str, Any]]]:
    with conn.execution_options(yield_per=BATCH_ROWS).execute(_ordered(table)) as result:
        for batch in result.mappings().partitions():
            yield [{name: _portable(value) for name, value in row.items()} for row in batch]


def _portable(value: Any) -> Any:
    """A value as every database stores it alike: times as aware UTC (SQLite gives naive)."""
    return clock.as_utc(value) if isinstance(value, datetime) else value


def _copy_rows(reading: Connection, writing: Connection, table: Table) -> None:
    """In multi-row INSERT statements: each fires PostgreSQL's statement triggers once (the
    patient totals), where a row at a time would fire them for every row."""
    columns = tuple(column.name for column in table.columns)
    insert_rows = MultiRowInsert(table, columns)
    for batch in _rows(reading, table):
        insert_rows.run(writing, [tuple(row[name] for name in columns) for row in batch])


def _copy_chain_head(reading: Connection, writing: Connection) -> None:
    """The head, and where the keyed era begins with which key's fingerprint."""
    columns = (audit_chain.c.last_id, audit_chain.c.last_hash, audit_chain.c.keyed_from,
               audit_chain.c.key_id)  # fmt: skip
    head = reading.execute(select(*columns)).one()._asdict()
    writing.execute(audit_chain.update().values(head))


def _last_id_given(conn: Connection, table: Table) -> int:
    """The highest id the source ever handed out, purged rows included."""
    highest = conn.execute(select(func.max(table.c.id))).scalar() or 0
    if conn.dialect.name == "sqlite":
        query = text("SELECT seq FROM sqlite_sequence WHERE name = :table")
    else:
        query = text("SELECT pg_sequence_last_value(pg_get_serial_sequence(:table, 'id'))")
    return max(highest, conn.execute(query, {"table": table.name}).scalar() or 0)


def _set_next_id(conn: Connection, table: Table, last_given: int) -> None:
    if not last_given:
        return
    params = {"table": table.name, "last": last_given}
    if conn.dialect.name == "sqlite":
        conn.execute(text("DELETE FROM sqlite_sequence WHERE name = :table"), params)
        conn.execute(text("INSERT INTO sqlite_sequence (name, seq) VALUES (:table, :last)"), params)
    else:
        conn.execute(text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :last)"), params)


def _digest(conn: Connection, table: Table) -> tuple[int, str]:
    """Rows and a SHA-256 over their values, alike whichever database holds them."""
    digest, count = hashlib.sha256(), 0
    for batch in _rows(conn, table):
        for row in batch:
            digest.update(orjson.dumps([_canonical(v) for v in row.values()]))
            count += 1
    return count, digest.hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return clock.rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _fingerprint(conn: Connection) -> dict[str, Any]:
    """What a faithful copy must show: each table's rows and digest, the totals, the chain."""
    found: dict[str, Any] = {t.name: _digest(conn, t) for t in COPIED_TABLES}
    found["patient_totals"] = tuple(
        conn.execute(patient_total(column)).scalar_one()
        for column in (patient_totals.c.active, patient_totals.c.deleted)
    )
    found["audit_chain"] = tuple(
        conn.execute(select(audit_chain.c.last_id, audit_chain.c.last_hash)).one()
    )
    return found


def _verify(target: Engine, expected: dict[str, Any]) -> CopyReport:
    with _snapshot(target) as conn:
        found = _fingerprint(conn)
    differing = [name for name in expected if found[name] != expected[name]]
    if differing:
        raise CopyRefused(f"the copy does not match the source in: {', '.join(differing)}")
    chain = trail.verify(target)
    if not chain.intact:
        raise CopyRefused(f"the copied audit trail is broken at row {chain.broken_at}")
    rows = {name: expected[name][0] for name in (t.name for t in COPIED_TABLES)}
    return CopyReport(rows=rows, audit_rows=chain.rows)
