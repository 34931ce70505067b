"""SQL for reading patients: filters, the name search on each database, sorting, paging."""

from __future__ import annotations

from dataclasses import dataclass

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

from healthcare.db.models import patient_totals, patients
from healthcare.patients.schemas import PatientQuery
from healthcare.patients.search import search_words

PUBLIC_COLUMNS = [c for c in patients.c if c.name not in {"name_search", "deleted_at"}]
DELETED_COLUMNS = [*PUBLIC_COLUMNS, patients.c.deleted_at]
SORT_COLUMNS = {
    name: patients.c[name] for name in ("id", "name", "age", "created_at", "updated_at")
}
# SQLite's full-text index over the names of patients that are not deleted (see migration 0001).
patients_fts = table("patients_fts", column("rowid"))

active = patients.c.deleted_at.is_(None)
deleted = patients.c.deleted_at.is_not(None)

by_id = select(*PUBLIC_COLUMNS).where(patients.c.id == bindparam("patient_id"), active)
with_deleted_by_id = select(*DELETED_COLUMNS).where(patients.c.id == bindparam("patient_id"))


@dataclass(frozen=True)
class Listing:
    page: Select
    total: Select


def _sorted(statement: Select, sort: str, id_column: ColumnElement) -> Select:
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    keys = [id_column] if key == "id" else [SORT_COLUMNS[key], id_column]
    return statement.order_by(*(k.desc() if descending else k for k in keys))


def _attribute_filters(query: PatientQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.disease:
        conditions.append(func.lower(patients.c.disease) == query.disease.strip().lower())
    if query.gender:
        conditions.append(patients.c.gender == query.gender)
    return conditions


def _paged(statement: Select, query: PatientQuery, id_column: ColumnElement) -> Select:
    return _sorted(statement, query.sort, id_column).limit(query.limit).offset(query.offset)


def patient_listing(query: PatientQuery, dialect: str) -> Listing:
    """The page and total for a listing. Every word of ``q`` must start a word of the name."""
    filters = _attribute_filters(query)
    words = search_words(query.q or "")
    if words and dialect == "sqlite":
        return _sqlite_search_listing(query, words, filters)
    if words:
        tsquery = " & ".join(f"{word}:*" for word in words)
        filters.append(
            func.to_tsvector("simple", patients.c.name_search).op("@@")(
                func.to_tsquery("simple", tsquery)
            )
        )
    conditions = [active, *filters]
    page = _paged(select(*PUBLIC_COLUMNS).where(*conditions), query, patients.c.id)
    total = select(func.count()).select_from(patients).where(*conditions)
    return Listing(page, total if filters else select(patient_totals.c.active))


def _sqlite_search_listing(
    query: PatientQuery, words: list[str], filters: list[ColumnElement[bool]]
) -> Listing:
    match = text("patients_fts MATCH :match").bindparams(
        match=" ".join(f'"{word}"*' for word in words)
    )
    source: FromClause = patients.join(patients_fts, patients_fts.c.rowid == patients.c.id)
    conditions = [match, active, *filters]
    # Ordering by the index's own rowid lets SQLite stop after one page of matches.
    page = _paged(
        select(*PUBLIC_COLUMNS).select_from(source).where(*conditions), query, patients_fts.c.rowid
    )
    if filters:
        total = select(func.count()).select_from(source).where(*conditions)
    else:
        total = select(func.count()).select_from(patients_fts).where(match)
    return Listing(page, total)


def deleted_listing(limit: int, offset: int) -> Listing:
    page = select(*DELETED_COLUMNS).where(deleted).order_by(patients.c.deleted_at.desc())
    return Listing(page.limit(limit).offset(offset), select(patient_totals.c.deleted))
