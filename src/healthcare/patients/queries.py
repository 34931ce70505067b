"""SQL for reading patients: filters, the name search on each database, sorting, paging.

Listing statements are built once per shape (database, sort, which filters) with bound
parameters for every value, so they compile once and run on the raw read path."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    FromClause,
    Select,
    bindparam,
    column,
    func,
    literal_column,
    select,
    table,
    text,
    true,
    union,
)

from healthcare.db.models import (
    SEARCH_KEYS,
    patient_identifiers,
    patient_total,
    patient_totals,
    patients,
)
from healthcare.db.raw import RawStatement
from healthcare.patients.identifiers import phone_key
from healthcare.patients.matching import Demographics, name_key, within_a_slip
from healthcare.patients.schemas import PageQuery, PatientQuery
from healthcare.patients.search import fold, search_words

PUBLIC_COLUMNS = [c for c in patients.c if c.name not in {*SEARCH_KEYS, "deleted_at"}]
DELETED_COLUMNS = [*PUBLIC_COLUMNS, patients.c.deleted_at]
SORT_COLUMNS = {
    name: patients.c[name] for name in ("id", "name", "age", "created_at", "updated_at")
}
# SQLite's full-text index over the names of patients that are not deleted (see migration 0001).
patients_fts = table("patients_fts", column("rowid"))

# The text search configuration as a literal, as the name-search index was made with it: as a
# bound parameter the planner could not match a generic plan's expression to the index.
SIMPLE = literal_column("'simple'::regconfig")
active = patients.c.deleted_at.is_(None)
deleted = patients.c.deleted_at.is_not(None)

by_id = RawStatement(
    select(*PUBLIC_COLUMNS).where(patients.c.id == bindparam("patient_id"), active)
)
with_deleted_by_id = select(*DELETED_COLUMNS).where(patients.c.id == bindparam("patient_id"))


revision = RawStatement(patient_total(patient_totals.c.revision))


@dataclass(frozen=True)
class Listing:
    """A listing's statements. Without ``total`` the page counts its matches itself: each
    row starts with the total, and a page past the end is one row of the total and nulls."""

    page: RawStatement
    total: RawStatement | None


def _ordered(
    statement: Select,
    sort: str,
    id_column: ColumnElement,
    columns: Mapping[str, ColumnElement] = SORT_COLUMNS,
) -> Select:
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    keys = [id_column] if key == "id" else [columns[key], id_column]
    return statement.order_by(*(k.desc() if descending else k for k in keys))


def _page(
    source: FromClause, conditions: list[ColumnElement[bool]], sort: str, id_column: ColumnElement
) -> RawStatement:
    """One page of patients: first the ids of the page, found and skipped over in the indexes
    where they can be (a deep offset or a broad search then never reads the wide rows it passes
    over), then the rows of those ids alone."""
    ids = _ordered(select(id_column).select_from(source).where(*conditions), sort, id_column)
    ids = ids.limit(bindparam("limit")).offset(bindparam("offset"))
    rows = select(*PUBLIC_COLUMNS).where(patients.c.id.in_(ids.scalar_subquery()))
    return RawStatement(_ordered(rows, sort, patients.c.id))


def _matched_first(
    conditions: list[ColumnElement[bool]], wanted: frozenset[str], sort: str
) -> RawStatement:
    """A page of a PostgreSQL name search and its total, in one statement: every match found
    through the full-text index first, once, then counted, sorted and paged. Left to itself
    the planner walked the id index and tested each row's name until a page was full (it
    expects a prefix to match thousands): for a prefix few names have, that read the whole
    table (360 ms at 245,000 patients, against 0.1 ms). Counting the same matches again
    in a statement of its own doubled the rest."""
    key = sort.lstrip("-")
    kept = [patients.c.id] if key == "id" else [patients.c.id, SORT_COLUMNS[key]]
    found = select(*kept).where(*conditions).cte("matched").prefix_with("MATERIALIZED")
    ids = _ordered(select(found.c.id).where(*_cursor(wanted, found.c.id)), sort, found.c.id,
                   found.c)  # fmt: skip
    ids = ids.limit(bindparam("limit")).offset(bindparam("offset"))
    rows = select(*PUBLIC_COLUMNS).where(patients.c.id.in_(ids.scalar_subquery())).subquery()
    total = select(func.count()).select_from(found).scalar_subquery()
    one = select(literal_column("1").label("one")).subquery()
    page = select(total, *rows.c).select_from(one.outerjoin(rows, true()))
    return RawStatement(_ordered(page, sort, rows.c.id, rows.c))


def _prefix(column: ColumnElement, name: str, dialect: str) -> list[ColumnElement[bool]]:
    """``column`` starts with the bound ``name``: a range scan of its index, in byte order."""
    if dialect == "postgresql":
        column = column.collate("C")
    return [column >= bindparam(f"{name}_from"), column < bindparam(f"{name}_to")]


def _identity_filters(wanted: frozenset[str], dialect: str) -> list[ColumnElement[bool]]:
    """The structured-demographics filters of a listing (see docs/patient-identity.md)."""
    filters: list[ColumnElement[bool]] = []
    if "family" in wanted:
        filters += _prefix(patients.c.family_search, "family", dialect)
    if "given" in wanted:
        given: ColumnElement = patients.c.given_search
        if dialect == "sqlite" and "family" in wanted:
            # Keeps SQLite on the family index (given names are checked inside it): without
            # statistics on ranges it took the given-name index, ten times slower at 1M rows.
            given = given + ""
        filters += _prefix(given, "given", dialect)
    if "date_of_birth" in wanted:
        filters.append(patients.c.date_of_birth == bindparam("date_of_birth"))
    if "born_from" in wanted:
        filters.append(patients.c.date_of_birth >= bindparam("born_from"))
    if "born_to" in wanted:
        filters.append(patients.c.date_of_birth <= bindparam("born_to"))
    if "phone" in wanted:
        filters.append(patients.c.phone_key == bindparam("phone"))
    if "mrn" in wanted:
        filters.append(patients.c.mrn == bindparam("mrn"))
    if "identifier" in wanted:
        holders = select(patient_identifiers.c.patient_id).where(
            patient_identifiers.c.system == bindparam("identifier_system"),
            patient_identifiers.c.value == bindparam("identifier_value"),
        )
        filters.append(patients.c.id.in_(holders.scalar_subquery()))
    if "email" in wanted:
        filters.append(func.lower(patients.c.email) == bindparam("email"))
    if "id" in wanted:
        filters.append(patients.c.id == bindparam("id"))
    return filters


def _cursor(
    wanted: frozenset[str], id_column: ColumnElement = patients.c.id
) -> list[ColumnElement[bool]]:
    """Keyset paging (FHIR's links): the page starts after, or ends before, a patient's id.
    The total still counts every match."""
    found: list[ColumnElement[bool]] = []
    if "after" in wanted:
        found.append(id_column > bindparam("after"))
    if "before" in wanted:
        found.append(id_column < bindparam("before"))
    return found


@cache
def _listing(dialect: str, sort: str, search: bool, wanted: frozenset[str]) -> Listing:
    filters = _identity_filters(wanted, dialect)
    if "disease" in wanted:
        filters.append(func.lower(patients.c.disease) == bindparam("disease"))
    if "gender" in wanted:
        filters.append(patients.c.gender == bindparam("gender"))
    cursor = _cursor(wanted)
    if search and dialect == "sqlite":
        return _sqlite_search_listing(sort, filters, cursor)
    if search:
        filters.append(
            func.to_tsvector(SIMPLE, patients.c.name_search).op("@@")(
                func.to_tsquery(SIMPLE, bindparam("words"))
            )
        )
    conditions = [active, *filters]
    if search:
        return Listing(_matched_first(conditions, wanted, sort), None)
    page = _page(patients, [*conditions, *cursor], sort, patients.c.id)
    total = select(func.count()).select_from(patients).where(*conditions)
    return Listing(page, RawStatement(total if filters else patient_total(patient_totals.c.active)))


def _sqlite_search_listing(
    sort: str, filters: list[ColumnElement[bool]], cursor: list[ColumnElement[bool]]
) -> Listing:
    match = text("patients_fts MATCH :words")
    source: FromClause = patients.join(patients_fts, patients_fts.c.rowid == patients.c.id)
    conditions = [match, active, *filters]
    # Ordering by the index's own rowid lets SQLite stop after one page of matches.
    page = _page(source, [*conditions, *cursor], sort, patients_fts.c.rowid)
    if filters:
        total = select(func.count()).select_from(source).where(*conditions)
    else:
        total = select(func.count()).select_from(patients_fts).where(match)
    return Listing(page, RawStatement(total))


def search_expression(words: list[str], dialect: str) -> str:
    """The full-text query for the words: each must start a word of the name."""
    if dialect == "sqlite":
        return " ".join(f'"{word}"*' for word in words)
    return " & ".join(f"{word}:*" for word in words)


# The filter each parameter belongs to, where the two names differ.
FILTER_OF = {
    "family_from": "family", "family_to": "family", "given_from": "given", "given_to": "given",
    "identifier_system": "identifier", "identifier_value": "identifier",
}  # fmt: skip


def _prefix_range(text: str) -> tuple[str, str]:
    """The range of folded strings that start with ``text``."""
    start = fold(text).strip()
    return start, start[:-1] + chr(ord(start[-1]) + 1)


def _identity_parameters(query: PatientQuery) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in ("family", "given"):
        text = getattr(query, name)
        if text and fold(text).strip():
            params[f"{name}_from"], params[f"{name}_to"] = _prefix_range(text)
    for name in ("date_of_birth", "born_from", "born_to"):
        if getattr(query, name) is not None:
            params[name] = getattr(query, name)
    if query.phone:
        params["phone"] = phone_key(query.phone)
    if query.mrn:
        params["mrn"] = query.mrn.strip().upper()
    if query.identifier:
        params["identifier_system"], params["identifier_value"] = query.identifier.split("|")
    return params


def _exact_parameters(query: PatientQuery) -> dict[str, Any]:
    """E-mail, id and the keyset cursor, where the query gives them."""
    params: dict[str, Any] = {}
    if query.email:
        params["email"] = query.email.strip().lower()
    for name in ("id", "after", "before"):
        if getattr(query, name) is not None:
            params[name] = getattr(query, name)
    return params


def patient_listing(query: PatientQuery, dialect: str) -> tuple[Listing, dict[str, Any]]:
    """The statements and parameters for one listing request."""
    words = search_words(query.q or "")
    params: dict[str, Any] = _identity_parameters(query)
    disease = (query.disease or "").strip().lower()
    if disease:
        params["disease"] = disease
    if query.gender:
        params["gender"] = query.gender
    params.update(_exact_parameters(query))
    wanted = frozenset(FILTER_OF.get(name, name) for name in params)
    listing = _listing(dialect, query.sort, bool(words), wanted)
    if words:
        params["words"] = search_expression(words, dialect)
    return listing, {**params, "limit": query.limit, "offset": query.offset}


deleted_listing = Listing(
    RawStatement(
        select(*DELETED_COLUMNS)
        .where(deleted)
        .order_by(patients.c.deleted_at.desc(), patients.c.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    ),
    RawStatement(patient_total(patient_totals.c.deleted)),
)


def page_parameters(query: PageQuery) -> dict[str, Any]:
    return {"limit": query.limit, "offset": query.offset}


CANDIDATE_COLUMNS = [
    *(
        patients.c[name]
        for name in (
            "id", "mrn", "family_name", "given_names", "name", "date_of_birth", "phone_key",
            "email", "identifiers",
        )
    ),
    func.lower(patients.c.email).label("email_key"),  # as the email block compares it
]  # fmt: skip
MAX_BLOCK = 2_000
BlockKey = tuple[str, Any]


def _blocked(*conditions: ColumnElement[bool]) -> Select:
    return select(patients.c.id).where(active, *conditions)


def _in(name: str) -> BindParameter[Any]:
    return bindparam(name, expanding=True)


# The blocks of many people in one statement: the values of each kind of block as a list,
# and the ids that the narrow reads below found in the others.
CANDIDATES = (
    select(*CANDIDATE_COLUMNS)
    .where(
        patients.c.id.in_(
            union(
                _blocked(patients.c.date_of_birth.in_(_in("born"))),
                _blocked(patients.c.phone_key.in_(_in("phone_key"))),
                _blocked(func.lower(patients.c.email).in_(_in("email"))),
                select(patients.c.id).where(patients.c.id.in_(_in("found"))),
            ).scalar_subquery()
        ),
        active,
        patients.c.merged_into.is_(None),
    )
)  # fmt: skip
HOLDERS = select(
    patient_identifiers.c.patient_id, patient_identifiers.c.system, patient_identifiers.c.value
).where(
    patient_identifiers.c.system.in_(_in("systems")), patient_identifiers.c.value.in_(_in("values"))
)
# Everyone with one of the name keys and a birth date: more than the name blocks, never less.
NAMESAKES = _blocked(
    patients.c.name_key.in_(_in("name_keys")), patients.c.date_of_birth.is_not(None)
).add_columns(patients.c.name_key, patients.c.date_of_birth)


def block_keys(wanted: Demographics) -> list[BlockKey]:
    """The blocks a person falls in, each as (kind, value): the birth date, the phone key,
    the email (lower-cased), each identifier, and the phonetic name key with the birth date
    (the block of namesakes born a slip away from it)."""
    keys: list[BlockKey] = []
    if wanted.born is not None:
        keys.append(("born", wanted.born))
    if wanted.phone_key:
        keys.append(("phone_key", wanted.phone_key))
    if wanted.email:
        keys.append(("email", wanted.email))
    key = name_key(wanted.family, wanted.given)
    if key and wanted.born is not None:  # see healthcare.patients.matching: the name block
        keys.append(("name", (key, wanted.born)))
    return keys + [("identifier", pair) for pair in wanted.identifiers]


# pg_advisory_xact_lock(IDENTITY_LOCKS, n): the advisory locks of the blocks a patient falls in.
IDENTITY_LOCKS = 0x1D_B10C
LOCK_BLOCKS = text(
    "SELECT pg_advisory_xact_lock(:space, block) FROM unnest(CAST(:blocks AS integer[])) AS block"
)


def lock_blocks(conn: Connection, wanted: Sequence[Demographics]) -> None:
    """On PostgreSQL, before a patient's duplicate check in a write transaction: wait for any
    other transaction writing a patient who could share a block with one of ``wanted``, so
    that the check sees that patient. Without it two servers (or two worker processes) creating the
    same person at the same instant each miss the other. A name block is locked by its name
    key alone: namesakes born a slip apart lock the same. (SQLite has one writer at a time.)

    A transaction that takes blocks more than once (two runs of creates in one group commit,
    or a create and an edit) can meet another one taking them in the opposite order:
    PostgreSQL then ends one of them after ``deadlock_timeout`` (1 s), and the group commit
    runs it again (``GroupCommit._run_again``)."""
    if conn.dialect.name != "postgresql":
        return
    keys = {
        (kind, value[0] if kind == "name" else value)
        for person in wanted
        for kind, value in block_keys(person)
    }
    if keys:  # sorted: two checks of one statement each never wait for each other's locks
        blocks = sorted({_lock_number(key) for key in keys})
        conn.execute(LOCK_BLOCKS, {"space": IDENTITY_LOCKS, "blocks": blocks})


def _lock_number(key: tuple[str, Any]) -> int:
    digest = hashlib.blake2b(repr(key).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


@lru_cache(maxsize=1 << 16)
def _slipped(born: date) -> frozenset[date]:
    return frozenset(within_a_slip(born))


def duplicate_candidates(
    conn: Connection, wanted: Sequence[Demographics]
) -> list[list[dict[str, Any]]]:
    """For each person, the patients (not deleted, not merged) sharing a block with them, in
    id order, at most MAX_BLOCK: the first step of duplicate detection (see
    healthcare.patients.matching). The same statements for a thousand people as for one:
    narrow reads of the identifier and name blocks, then one UNION of indexed lookups (not an
    OR: SQLite uses the partial indexes only for whole queries). Who is in which person's
    block is sorted out here, by the values the database compared."""
    keys = [block_keys(person) for person in wanted]
    wanted_keys = {key for person in keys for key in person}
    members = {**_identifier_holders(conn, wanted_keys), **_name_blocks(conn, wanted_keys)}
    found = conn.execute(CANDIDATES, _parameters(wanted_keys, members))
    columns = list(found.keys())
    rows = [dict(zip(columns, row, strict=True)) for row in found]
    for row in rows:
        for key in _keys_of(row):
            members.setdefault(key, set()).add(row["id"])
    by_id = {row["id"]: row for row in rows}
    return [_block_rows(person, members, by_id) for person in keys]


def _parameters(wanted: set[BlockKey], members: dict[BlockKey, set[int]]) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {"born": [], "phone_key": [], "email": []}
    for kind, value in wanted:
        if kind in params:
            params[kind].append(value)
    params["found"] = sorted(set().union(*members.values()))
    return params


def _keys_of(row: dict[str, Any]) -> list[BlockKey]:
    """The exact-value blocks a candidate is in, by the values the database compared."""
    return [
        ("born", row["date_of_birth"]),
        ("phone_key", row["phone_key"]),
        ("email", row["email_key"]),
    ]


def _block_rows(
    keys: list[BlockKey], members: dict[BlockKey, set[int]], by_id: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    found = set().union(*(members.get(key, ()) for key in keys)) & by_id.keys()
    return [by_id[pid] for pid in sorted(found)[:MAX_BLOCK]]


def _identifier_holders(conn: Connection, wanted: set[BlockKey]) -> dict[BlockKey, set[int]]:
    """Who holds each of the identifiers (system, value) wanted."""
    pairs = {value for kind, value in wanted if kind == "identifier"}
    if not pairs:
        return {}
    params = {"systems": sorted({s for s, _v in pairs}), "values": sorted({v for _s, v in pairs})}
    held: dict[BlockKey, set[int]] = {}
    for patient_id, system, value in conn.execute(HOLDERS, params):
        if (system, value) in pairs:
            held.setdefault(("identifier", (system, value)), set()).add(patient_id)
    return held


def _name_blocks(conn: Connection, wanted: set[BlockKey]) -> dict[BlockKey, set[int]]:
    """Who is in each name block wanted (a name key, and birth dates a slip away from one):
    read by name key alone, as narrow rows, and kept by the birth dates the database
    returned."""
    blocks = {value for kind, value in wanted if kind == "name"}
    if not blocks:
        return {}
    namesakes: dict[str, list[tuple[int, date]]] = {}
    for patient_id, key, born in conn.execute(
        NAMESAKES, {"name_keys": sorted({k for k, _b in blocks})}
    ):
        namesakes.setdefault(key, []).append((patient_id, born))
    return {
        ("name", (key, born)): {
            pid for pid, other in namesakes.get(key, ()) if other in _slipped(born)
        }
        for key, born in blocks
    }
