"""Append-only, hash-chained audit rows: writing them, checking the chain, reading them back.

Each row's hash covers the previous row's hash and the row's own values, so editing, removing
or reordering any row breaks the chain from that row on. From ``audit_chain.keyed_from`` on it
is an HMAC under the audit key, which is not in the database: someone who can write to the
database alone cannot re-hash the rows after taking some out. Rows before it (written before
the key existed) keep their plain SHA-256. Ids come from the chain head (one locked row), so
they have no gaps and follow commit order, whichever process wrote them. Checkpoints outside
the database (``healthcare.audit.checkpoints``) anchor the head against a cut tail."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, select, update

from healthcare import clock
from healthcare.audit.checkpoints import Expectations
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
    "token_id",
)
# Rows before the keyed era were hashed over the columns they had: all but token_id.
PLAIN_ERA_VALUES = len(VALUE_COLUMNS) - 1
SUCCESS = "success"
QUEUED = "healthcare.audit.queued"

CHAIN_HEAD = RawStatement(
    select(
        audit_chain.c.last_id,
        audit_chain.c.last_hash,
        audit_chain.c.keyed_from,
        audit_chain.c.key_id,
    )
    .where(audit_chain.c.id == 1)
    .with_for_update()
)
MOVE_HEAD = RawStatement(
    update(audit_chain)
    .where(audit_chain.c.id == 1)
    .values(
        last_id=bindparam("last_id"),
        last_hash=bindparam("last_hash"),
        keyed_from=bindparam("keyed_from"),
        key_id=bindparam("key_id"),
    )
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
    token_id: int | None = None
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
            self.token_id,
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


class AuditKeyMissing(RuntimeError):
    """The trail is keyed, and this process has no audit key to extend or check it with."""


# The audit key of each database, by its URL: set where the app and the CLI are assembled.
_KEYS: dict[str, bytes] = {}


def use_key(engine: Engine, key: bytes) -> None:
    """Hash this database's audit rows with ``key`` from now on (see ``healthcare.audit.keys``)."""
    _KEYS[_identity(engine)] = key


def key_for(engine: Engine) -> bytes | None:
    return _KEYS.get(_identity(engine))


def key_id(key: bytes) -> str:
    """A fingerprint of the key, safe to store: which key, not the key."""
    return hmac.new(key, b"healthcare audit key id", hashlib.sha256).hexdigest()[:16]


def _identity(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def row_hash(
    previous: str,
    event_id: int,
    values: Sequence[Any],
    key: bytes | None = None,
    disclosed: Sequence[int] = (),
) -> str:
    """The hash of a row from the one before it, its id and its values (``VALUE_COLUMNS``):
    an HMAC-SHA256 under ``key`` in the keyed era, else the plain era's SHA-256. A keyed
    listing's row also covers the patients it disclosed (ascending ids), so a disclosure row
    cannot be removed or added unseen."""
    if key is None:
        payload = [event_id, clock.rfc3339(values[0]), *values[1:PLAIN_ERA_VALUES]]
        return hashlib.sha256(previous.encode() + orjson.dumps(payload)).hexdigest()
    payload = [event_id, clock.rfc3339(values[0]), *values[1:]]
    if disclosed:
        payload.append(list(disclosed))
    return hmac.new(key, previous.encode() + orjson.dumps(payload), hashlib.sha256).hexdigest()


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
    info = conn.info  # not read again at the end: a lost connection cannot give it
    info[QUEUED] = queued = []
    try:
        yield
        _chain(conn, queued)
    finally:
        info.pop(QUEUED, None)


def _chain(conn: Connection, events: Sequence[Event]) -> None:
    if not events:
        return
    last_id, last_hash, keyed_from, stored_key_id = fetch_one_in(conn, CHAIN_HEAD, {})
    key = key_for(conn.engine)
    problem = _key_problem(keyed_from, stored_key_id, key)
    if problem is not None:
        raise AuditKeyMissing(problem)
    if key is not None and keyed_from is None:
        keyed_from = last_id + 1  # the keyed era begins with this transaction's first row
        stored_key_id = key_id(key)
    rows, disclosures = [], []
    for event in events:
        last_id += 1
        values = event.values()
        disclosed = sorted(set(event.disclosed))
        last_hash = row_hash(last_hash, last_id, values, key, disclosed)
        rows.append((last_id, *values, last_hash))
        disclosures += [(last_id, patient_id) for patient_id in disclosed]
    INSERT.run(conn, rows)
    if disclosures:
        DISCLOSE.run(conn, disclosures)
    head = {"last_id": last_id, "last_hash": last_hash, "keyed_from": keyed_from}
    execute_in(conn, MOVE_HEAD, {**head, "key_id": stored_key_id})


def _key_problem(
    keyed_from: int | None, stored_key_id: str | None, key: bytes | None
) -> str | None:
    if keyed_from is None:
        return None
    if key is None:
        return f"the trail is keyed from row {keyed_from}, and no audit key is configured"
    if stored_key_id is not None and stored_key_id != key_id(key):
        return (
            f"the trail is keyed with another audit key (id {stored_key_id}; this one is "
            f"{key_id(key)}): configure the key it was written with"
        )
    return None


@dataclass(frozen=True)
class ChainReport:
    rows: int
    broken_at: int | None = None
    reason: str | None = None
    keyed_from: int | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


NO_EXPECTATIONS = Expectations({}, None, ())


def verify(engine: Engine, expected: Expectations = NO_EXPECTATIONS) -> ChainReport:
    """Walk the whole chain; the first row whose id or hash is not what the chain, the audit
    key or the checkpoints (``expected``) say it must be."""
    key = key_for(engine)
    with engine.connect() as conn:
        head = select(
            audit_chain.c.last_id,
            audit_chain.c.last_hash,
            audit_chain.c.keyed_from,
            audit_chain.c.key_id,
        )
        last_id, last_hash, keyed_from, stored_key_id = conn.execute(head).one()
        problem = _key_problem(keyed_from, stored_key_id, key) or _era_problem(keyed_from, expected)
        if problem is not None:
            return ChainReport(0, keyed_from or expected.keyed_from or 1, problem, keyed_from)
        walked = _walk(conn, key, keyed_from, expected)
    if isinstance(walked, ChainReport):
        return dataclasses.replace(walked, keyed_from=keyed_from)
    count, previous = walked
    if (last_id, last_hash) != (count, previous):
        return ChainReport(
            count, count + 1, f"rows after {count} are missing (head at {last_id})", keyed_from
        )
    if expected.last_id > count:
        seen_at = expected.hashes[expected.last_id][1]
        reason = (
            f"the trail ends at row {count}, but the checkpoint of {seen_at} saw row "
            f"{expected.last_id}: its tail was cut"
        )
        return ChainReport(count, count + 1, reason, keyed_from)
    return ChainReport(count, keyed_from=keyed_from)


def _era_problem(keyed_from: int | None, expected: Expectations) -> str | None:
    if expected.keyed_from is not None and keyed_from != expected.keyed_from:
        return (
            f"the checkpoints say the keyed era begins at row {expected.keyed_from}, the "
            f"database says {keyed_from}: the trail was re-hashed without the key"
        )
    return None


def _walk(
    conn: Connection, key: bytes | None, keyed_from: int | None, expected: Expectations
) -> ChainReport | tuple[int, str]:
    """Every row in order: the first broken one, or the count of rows and the last hash."""
    expected_id, previous, keyed_at = 1, GENESIS_HASH, keyed_from or 0
    statement = select(audit_events).order_by(audit_events.c.id)
    disclosures = _DisclosuresByEvent(conn)
    with conn.execution_options(yield_per=2000).execute(statement) as result:
        for row in result.mappings():
            row_id = row["id"]
            if row_id != expected_id:
                return ChainReport(expected_id - 1, expected_id, f"row {expected_id} is missing")
            row_key = key if keyed_from is not None and row_id >= keyed_at else None
            disclosed = disclosures.of(row_id) if row_key else ()
            if row_hash(previous, row_id, stored_values(row), row_key, disclosed) != row["hash"]:
                return ChainReport(row_id - 1, row_id, f"row {row_id} does not match its hash")
            seen = expected.hashes.get(row_id)
            if seen is not None and seen[0] != row["hash"]:
                reason = (
                    f"row {row_id} is not the row the checkpoint of {seen[1]} saw: the trail "
                    "was re-hashed"
                )
                return ChainReport(row_id - 1, row_id, reason)
            previous, expected_id = row["hash"], expected_id + 1
    orphan = disclosures.beyond(expected_id - 1)
    if orphan is not None:
        reason = f"disclosure rows name event {orphan}, which is not in the trail"
        return ChainReport(expected_id - 1, orphan, reason)
    return expected_id - 1, previous


class _DisclosuresByEvent:
    """The patients each event disclosed, read once in event order beside the walk over the
    events (a query per listing would make a verify of millions of rows take hours)."""

    def __init__(self, conn: Connection) -> None:
        d = audit_disclosures.c
        ordered = select(d.event_id, d.patient_id).order_by(d.event_id, d.patient_id)
        rows = conn.execute(ordered.execution_options(yield_per=5000))
        self._groups = groupby(rows, key=lambda row: row[0])
        self._next: tuple[int, list[int]] | None = self._advance()

    def _advance(self) -> tuple[int, list[int]] | None:
        group = next(self._groups, None)
        return None if group is None else (group[0], [row[1] for row in group[1]])

    def of(self, event_id: int) -> list[int]:
        """The ids ``event_id`` disclosed; asked in ascending event order."""
        while self._next is not None and self._next[0] < event_id:
            self._next = self._advance()
        if self._next is not None and self._next[0] == event_id:
            return self._next[1]
        return []

    def beyond(self, last_id: int) -> int | None:
        """An event past the last one that disclosure rows name, if any."""
        while self._next is not None and self._next[0] <= last_id:
            self._next = self._advance()
        return None if self._next is None else self._next[0]


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
