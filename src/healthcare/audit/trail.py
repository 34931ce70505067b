"""Append-only, hash-chained audit rows: writing them, checking the chain, reading them back.

Each row's hash is SHA-256 over the previous row's hash and the row's own values, so editing,
removing or reordering any row breaks the chain from that row on. Ids come from the chain head
(one locked row), so they have no gaps and follow commit order, whichever process wrote them."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, select, update

from healthcare import clock
from healthcare.db.models import audit_chain, audit_disclosures, audit_events
from healthcare.db.raw import MultiRowInsert, RawStatement, execute_in, fetch_one_in

GENESIS_HASH = "0" * 64
VALUE_COLUMNS = (
    "at",
    "user_id",
    "username",
    "token_label",
    "action",
    "patient_id",
    "outcome",
    "client",
    "request_id",
    "fields",
    "detail",
)
SUCCESS = "success"
QUEUED = "healthcare.audit.queued"

CHAIN_HEAD = RawStatement(
    select(audit_chain.c.last_id, audit_chain.c.last_hash)
    .where(audit_chain.c.id == 1)
    .with_for_update()
)
MOVE_HEAD = RawStatement(
    update(audit_chain)
    .where(audit_chain.c.id == 1)
    .values(last_id=bindparam("last_id"), last_hash=bindparam("last_hash"))
)
INSERT = MultiRowInsert(audit_events, ("id", *VALUE_COLUMNS, "hash"))
DISCLOSE = MultiRowInsert(audit_disclosures, ("event_id", "patient_id"))


@dataclass(slots=True)
class Event:
    """One audited access. ``fields`` names what an update changed, never the values."""

    action: str
    outcome: str = SUCCESS
    user_id: int | None = None
    username: str | None = None
    token_label: str | None = None
    client: str | None = None
    request_id: str | None = None
    patient_id: int | None = None
    fields: Sequence[str] | None = None
    detail: str | None = None
    at: datetime = field(default_factory=lambda: clock.utc_now())
    disclosed: Sequence[int] = ()  # the patients a listing returned (audit_disclosures)

    def values(self) -> tuple[Any, ...]:
        """The stored values, in ``VALUE_COLUMNS`` order."""
        return (
            self.at,
            self.user_id,
            _storable(self.username, "username"),
            _storable(self.token_label, "token_label"),
            self.action,
            self.patient_id,
            self.outcome,
            _storable(self.client, "client"),
            _storable(self.request_id, "request_id"),
            ",".join(sorted(self.fields)) if self.fields else None,
            _storable(self.detail, "detail"),
        )


TEXT_LIMITS = {
    column.name: column.type.length
    for column in audit_events.c
    if getattr(column.type, "length", None) is not None
}


def _storable(value: str | None, name: str) -> str | None:
    """Text as the column can always take it: an audit row must never fail to be written
    because of what a caller typed (a NUL byte, an overlong name)."""
    if value is None:
        return None
    limit = TEXT_LIMITS[name]
    if len(value) <= limit and value.isprintable():
        return value
    cleaned = "".join("\ufffd" if unicodedata.category(ch) == "Cc" else ch for ch in value)
    return cleaned[:limit]


def row_hash(previous: str, event_id: int, values: Sequence[Any]) -> str:
    """The hash of a row from the one before it, its id and its values (``VALUE_COLUMNS``)."""
    payload = [event_id, clock.rfc3339(values[0]), *values[1:]]
    return hashlib.sha256(previous.encode() + orjson.dumps(payload)).hexdigest()


def stored_values(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """A row read back from the table, as ``row_hash`` takes its values."""
    return tuple(row[name] for name in VALUE_COLUMNS)


def append(conn: Connection, events: Sequence[Event]) -> None:
    """Add events to the chain inside the caller's transaction: they commit with its change.

    Inside a group-commit transaction (see ``batched``) they are queued and join the chain
    together, once, just before the commit."""
    queued = conn.info.get(QUEUED)
    if queued is not None:
        queued.extend(events)
    else:
        _chain(conn, events)


@contextmanager
def batched(conn: Connection) -> Iterator[None]:
    """Around a transaction: the events appended in it join the chain in one go at its end
    (one locked read of the chain head, one multi-row insert), if nothing failed."""
    conn.info[QUEUED] = queued = []
    try:
        yield
        _chain(conn, queued)
    finally:
        conn.info.pop(QUEUED, None)


def _chain(conn: Connection, events: Sequence[Event]) -> None:
    if not events:
        return
    last_id, last_hash = fetch_one_in(conn, CHAIN_HEAD, {})
    rows, disclosures = [], []
    for event in events:
        last_id += 1
        values = event.values()
        last_hash = row_hash(last_hash, last_id, values)
        rows.append((last_id, *values, last_hash))
        disclosures += [(last_id, patient_id) for patient_id in event.disclosed]
    INSERT.run(conn, rows)
    if disclosures:
        DISCLOSE.run(conn, disclosures)
    execute_in(conn, MOVE_HEAD, {"last_id": last_id, "last_hash": last_hash})


@dataclass(frozen=True)
class ChainReport:
    rows: int
    broken_at: int | None = None
    reason: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def verify(engine: Engine) -> ChainReport:
    """Walk the whole chain; the first row whose id or hash is not what the chain says."""
    expected_id, previous, count = 1, GENESIS_HASH, 0
    with engine.connect() as conn:
        statement = select(audit_events).order_by(audit_events.c.id)
        with conn.execution_options(yield_per=2000).execute(statement) as result:
            for row in result.mappings():
                if row["id"] != expected_id:
                    return ChainReport(count, expected_id, f"row {expected_id} is missing")
                if row_hash(previous, row["id"], stored_values(row)) != row["hash"]:
                    return ChainReport(count, row["id"], f"row {row['id']} does not match its hash")
                previous, expected_id, count = row["hash"], expected_id + 1, count + 1
        head = select(audit_chain.c.last_id, audit_chain.c.last_hash)
        last_id, last_hash = conn.execute(head).one()
    if (last_id, last_hash) != (count, previous):
        return ChainReport(count, count + 1, f"rows after {count} are missing (head at {last_id})")
    return ChainReport(count)


def as_api(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": clock.rfc3339(row["at"]),
        **{name: row[name] for name in VALUE_COLUMNS[1:] if name != "fields"},
        "fields": row["fields"].split(",") if row["fields"] else [],
        "hash": row["hash"],
    }


def export(engine: Engine, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every row at or after ``since``, oldest first, as the API shows them."""
    statement = select(audit_events).order_by(audit_events.c.id)
    if since is not None:
        statement = statement.where(audit_events.c.at >= since)
    with (
        engine.connect() as conn,
        conn.execution_options(yield_per=2000).execute(statement) as result,
    ):
        for row in result.mappings():
            yield as_api(row)
