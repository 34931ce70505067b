"""Reading the audit trail back: filtered, newest first, a page at a time (keyset paging on
the id, so a page costs the same however deep into millions of rows it is).

One patient's rows, and the disclosures naming the patient, are indexed within eras of
``ERA_SIZE`` consecutive event ids (migrations 0003 and 0010: a per-patient index over the
whole trail took each read's row at a random place, which cost more than the read). They are
looked up many eras per statement, newest eras first, until the page is full."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import Connection, Row, Select, literal_column, select, text

from healthcare import clock
from healthcare.audit.record import audited_read
from healthcare.audit.trail import as_api
from healthcare.auth.access import Actor, Permission, authorize
from healthcare.db.database import Database
from healthcare.db.models import audit_chain, audit_disclosures, audit_events
from healthcare.patients.schemas import MAX_PATIENT_ID, QueryModel

ACTION_PATTERN = r"^[a-z_]+(\.[a-z_]+|\.\*)?$"
ERA_SIZE = 4096
# Written exactly as the indexes' expression and condition (migration 0003), so that the
# planners use them.
ERA = literal_column(f"audit_events.id / {ERA_SIZE}")
DISCLOSURE_ERA = literal_column(f"audit_disclosures.event_id / {ERA_SIZE}")
ERAS_PER_STATEMENT = 256
CHANGES = ("patient.create", "patient.update", "patient.delete", "patient.restore")
IS_CHANGE = text(f"action IN ({', '.join(repr(action) for action in CHANGES)})")


class AuditPageQuery(QueryModel):
    before: int | None = Field(
        None, ge=1, le=2**63 - 1, description="Only rows older than this id (paging)."
    )
    limit: int = Field(50, ge=1, le=500)


class AuditQuery(AuditPageQuery):
    username: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$",
        description="The acting user (operator:NAME for the command line); case is ignored.",
    )
    patient_id: int | None = Field(None, ge=1, le=MAX_PATIENT_ID)
    action: str | None = Field(
        None, pattern=ACTION_PATTERN, description="An action, or a family such as patient.*"
    )
    since: AwareDatetime | None = Field(None, description="At or after (RFC 3339).")
    until: AwareDatetime | None = Field(None, description="Before (RFC 3339).")


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    user_id: int | None
    username: str | None
    token_label: str | None
    token_id: int | None = Field(description="The API token the call came with")
    action: str
    patient_id: int | None
    outcome: str
    client: str | None
    request_id: str | None
    fields: list[str]
    detail: str | None
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_before: int | None = Field(None, description="Pass as `before` for the next page.")


def _filtered(query: AuditPageQuery, patient_id: int | None) -> Select[Any]:
    c = audit_events.c
    statement = select(audit_events).order_by(c.id.desc())
    if query.before is not None:
        statement = statement.where(c.id < query.before)
    if patient_id is not None:
        statement = statement.where(c.patient_id == patient_id)
    if isinstance(query, AuditQuery):
        if query.username:
            statement = statement.where(c.username == query.username.strip().lower())
        if query.action:
            family = query.action.removesuffix(".*")
            statement = statement.where(
                c.action.startswith(family + ".") if family != query.action else c.action == family
            )
        if query.since:
            statement = statement.where(c.at >= query.since)
        if query.until:
            statement = statement.where(c.at < query.until)
    return statement


def find_events(
    db: Database, actor: Actor, query: AuditPageQuery, patient_id: int | None = None
) -> dict[str, Any]:
    """A page of audit rows: ``patient_id`` narrows to one patient's access log."""
    if isinstance(query, AuditQuery) and query.patient_id is not None:
        patient_id = query.patient_id
    authorize(db, actor, Permission.READ_AUDIT, "audit.read", patient_id)

    def read() -> dict[str, Any]:
        db.pending_audit.flush()  # this process's latest reads belong on the page
        statement, wanted = _filtered(query, patient_id), query.limit + 1
        with db.reading() as conn:
            if patient_id is None:
                rows = conn.execute(statement.limit(wanted)).mappings().all()
            else:
                rows = _era_by_era(conn, statement, ERA, query.before, wanted)
                rows = _with_listings(conn, query, patient_id, rows, wanted)
        items = [as_api(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return {"items": items, "next_before": items[-1]["id"] if more else None}

    return audited_read(db, actor.event("audit.read", patient_id=patient_id), read)


def _era_by_era(
    conn: Connection, statement: Select[Any], era_of: Any, before: int | None, wanted: int
) -> list[Any]:
    """Up to ``wanted`` rows of a statement about one patient, newest first; ``era_of``: the
    era expression of its index."""
    newest = conn.execute(select(audit_chain.c.last_id)).scalar_one()
    if before is not None:
        newest = min(newest, before - 1)  # a far-off cursor must not mean eras of nothing
    rows: list[Any] = []
    era = newest // ERA_SIZE
    while era >= 0 and len(rows) < wanted:
        eras = list(range(era, max(era - ERAS_PER_STATEMENT, -1), -1))
        found = conn.execute(statement.where(era_of.in_(eras)).limit(wanted - len(rows)))
        rows += found.mappings().all()
        era -= ERAS_PER_STATEMENT
    return rows


def _with_listings(
    conn: Connection, query: AuditPageQuery, patient_id: int, rows: list[Any], wanted: int
) -> list[Any]:
    """The patient's rows and the rows of the listings that returned the patient, newest
    first: the newest ``wanted`` of each, merged."""
    d = audit_disclosures.c
    listed = select(d.event_id).where(d.patient_id == patient_id)
    if query.before is not None:
        listed = listed.where(d.event_id < query.before)
    newest = _era_by_era(
        conn, listed.order_by(d.event_id.desc()), DISCLOSURE_ERA, query.before, wanted
    )
    event_ids = [row["event_id"] for row in newest]
    listings = conn.execute(_filtered(query, None).where(audit_events.c.id.in_(event_ids)))
    merged = [*rows, *listings.mappings().all()]
    return sorted(merged, key=lambda row: row["id"], reverse=True)[:wanted]


def last_change_in(conn: Connection, patient_id: int) -> Row[Any] | None:
    """The newest successful change of a patient: its user id, username, action and time."""
    c = audit_events.c
    statement = (
        select(c.user_id, c.username, c.action, c.at)
        .where(c.patient_id == patient_id, IS_CHANGE, c.outcome == "success")
        .order_by(c.id.desc())
        .limit(1)
    )
    return conn.execute(statement).first()


def last_change(db: Database, patient_id: int) -> dict[str, Any] | None:
    """Who last changed a patient, and when: shown with the record to whoever may read it."""
    with db.reading() as conn:
        row = last_change_in(conn, patient_id)
    if row is None:
        return None
    return {"username": row.username, "action": row.action, "at": clock.as_utc(row.at)}
