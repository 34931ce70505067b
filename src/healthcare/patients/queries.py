"""SQL for reading patients: filters, the name search on each database, sorting, paging.

Listing statements are built once per shape (database, sort, which filters) with bound
parameters for every value, so they compile once and run on the raw read path."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    bindparam,
    column,
    func,
    select,
    table,
    text,
)

from healthcare.db.models import SEARCH_KEYS, patient_totals, patients
from healthcare.db.raw import RawStatement
from healthcare.patients.schemas import PageQuery, PatientQuery
from healthcare.patients.search import search_words

PUBLIC_COLUMNS = [c for c in patients.c if c.name not in {*SEARCH_KEYS, "deleted_at"}]
DELETED_COLUMNS = [*PUBLIC_COLUMNS, patients.c.deleted_at]
SORT_COLUMNS = {
    name: patients.c[name] for name in ("id", "name", "age", "created_at", "updated_at")
}
# SQLite's full-text index over the names of patients that are not deleted (see migration 0001).
patients_fts = table("patients_fts", column("rowid"))

active = patients.c.deleted_at.is_(None)
deleted = patients.c.deleted_at.is_not(None)

by_id = RawStatement(
    select(*PUBLIC_COLUMNS).where(patients.c.id == bindparam("patient_id"), active)
)
with_deleted_by_id = select(*DELETED_COLUMNS).where(patients.c.id == bindparam("patient_id"))


revision = RawStatement(select(patient_totals.c.revision))


@dataclass(frozen=True)
class Listing:
    page: RawStatement
    total: RawStatement


def _sorted(statement: Select, sort: str, id_column: ColumnElement) -> Select:
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    keys = [id_column] if key == "id" else [SORT_COLUMNS[key], id_column]
    ordered = statement.order_by(*(k.desc() if descending else k for k in keys))
    return ordered.limit(bindparam("limit")).offset(bindparam("offset"))


@cache
def _listing(dialect: str, sort: str, search: bool, disease: bool, gender: bool) -> Listing:
    filters: list[ColumnElement[bool]] = []
    if disease:
        filters.append(func.lower(patients.c.disease) == bindparam("disease"))
    if gender:
        filters.append(patients.c.gender == bindparam("gender"))
    if search and dialect == "sqlite":
        return _sqlite_search_listing(sort, filters)
    if search:
        filters.append(
            func.to_tsvector("simple", patients.c.name_search).op("@@")(
                func.to_tsquery("simple", bindparam("words"))
            )
        )
    conditions = [active, *filters]
    page = _sorted(select(*PUBLIC_COLUMNS).where(*conditions), sort, patients.c.id)
    total = select(func.count()).select_from(patients).where(*conditions)
    return Listing(
        RawStatement(page), RawStatement(total if filters else select(patient_totals.c.active))
    )


def _sqlite_search_listing(sort: str, filters: list[ColumnElement[bool]]) -> Listing:
    match = text("patients_fts MATCH :words")
    source: FromClause = patients.join(patients_fts, patients_fts.c.rowid == patients.c.id)
    conditions = [match, active, *filters]
    # Ordering by the index's own rowid lets SQLite stop after one page of matches.
    page = _sorted(
        select(*PUBLIC_COLUMNS).select_from(source).where(*conditions), sort, patients_fts.c.rowid
    )
    if filters:
        total = select(func.count()).select_from(source).where(*conditions)
    else:
        total = select(func.count()).select_from(patients_fts).where(match)
    return Listing(RawStatement(page), RawStatement(total))


def search_expression(words: list[str], dialect: str) -> str:
    """The full-text query for the words: each must start a word of the name."""
    if dialect == "sqlite":
        return " ".join(f'"{word}"*' for word in words)
    return " & ".join(f"{word}:*" for word in words)


def patient_listing(query: PatientQuery, dialect: str) -> tuple[Listing, dict[str, Any]]:
    """The statements and parameters for one listing request."""
    words = search_words(query.q or "")
    disease = (query.disease or "").strip().lower()
    listing = _listing(dialect, query.sort, bool(words), bool(disease), bool(query.gender))
    params: dict[str, Any] = {"limit": query.limit, "offset": query.offset}
    if words:
        params["words"] = search_expression(words, dialect)
    if disease:
        params["disease"] = disease
    if query.gender:
        params["gender"] = query.gender
    return listing, params


deleted_listing = Listing(
    RawStatement(
        select(*DELETED_COLUMNS)
        .where(deleted)
        .order_by(patients.c.deleted_at.desc(), patients.c.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    ),
    RawStatement(select(patient_totals.c.deleted)),
)


def page_parameters(query: PageQuery) -> dict[str, Any]:
    return {"limit": query.limit, "offset": query.offset}
