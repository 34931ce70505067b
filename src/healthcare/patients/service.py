"""The patient use cases. Both front ends call these; no rule about patients lives elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, update

from healthcare import clock
from healthcare.audit.queries import last_change_in
from healthcare.audit.record import audited_read, audited_write
from healthcare.audit.trail import Event
from healthcare.auth.access import Actor, Permission, authorize
from healthcare.clock import rfc3339, utc_now
from healthcare.db.database import Database
from healthcare.db.models import patients
from healthcare.db.raw import RawStatement, fetch_one_in
from healthcare.db.revision_cache import MISSING
from healthcare.errors import Conflict, Forbidden, NotFound, VersionMismatch
from healthcare.patients import queries
from healthcare.patients.schemas import PageQuery, PatientIn, PatientPatch, PatientQuery, age_on
from healthcare.patients.search import fold

WRITABLE = tuple(PatientIn.model_fields)
FIELDS = tuple(column.key for column in queries.PUBLIC_COLUMNS)
OWN_DELETE_RESTORE_WINDOW = timedelta(hours=24)
INSERT = RawStatement(
    insert(patients)
    .values(
        {
            column.key: bindparam(column.key, type_=column.type)
            for column in patients.c
            if column.key not in {"id", "deleted_at"}
        }
    )
    .returning(patients.c.id)
)


def to_api(row: Sequence[Any], today: date | None = None) -> dict[str, Any]:
    """A stored row (the columns of ``FIELDS``, in order) as the API shows it.

    The age follows the birth date as time passes. Rows from the raw read path carry SQLite's
    text for dates and times, rows built in Python carry objects; both serialise the same."""
    pid, name, age, disease, gender, born, phone, email, notes, created, updated, version = row[:12]
    if born is not None:
        if isinstance(born, str):
            born = date.fromisoformat(born)
        age = age_on(born, today or utc_now().date())
        born = born.isoformat()
    return {
        "id": pid,
        "name": name,
        "age": age,
        "disease": disease,
        "gender": gender,
        "date_of_birth": born,
        "phone": phone,
        "email": email,
        "notes": notes,
        "created_at": rfc3339(created),
        "updated_at": rfc3339(updated),
        "version": version,
    }


def deleted_to_api(row: Sequence[Any], today: date | None = None) -> dict[str, Any]:
    return {**to_api(row, today), "deleted_at": rfc3339(row[len(FIELDS)])}


def as_row(values: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(values[name] for name in FIELDS)


def _stored_values(data: PatientIn) -> dict[str, Any]:
    values = data.model_dump()
    values["name_search"] = fold(data.name)
    return values


def _load(conn: Connection, patient_id: int, *, include_deleted: bool = False) -> dict[str, Any]:
    row = conn.execute(queries.with_deleted_by_id, {"patient_id": patient_id}).mappings().first()
    if row is None or (row["deleted_at"] is not None and not include_deleted):
        raise NotFound(f"No patient with id {patient_id}.")
    return dict(row)


def _check_version(current: Mapping[str, Any], expected: int | None) -> None:
    if expected is not None and expected != current["version"]:
        raise VersionMismatch(
            f"Patient {current['id']} is at version {current['version']}, not {expected}: "
            "somebody changed it meanwhile. Reload it and apply your change again.",
            current["version"],
        )


def get_patient(db: Database, actor: Actor, patient_id: int) -> dict[str, Any]:
    authorize(db, actor, Permission.READ_PATIENTS, "patient.read", patient_id)

    def read() -> dict[str, Any]:
        [rows] = db.read((queries.by_id, {"patient_id": patient_id}))
        if not rows:
            raise NotFound(f"No patient with id {patient_id}.")
        return to_api(rows[0])

    return audited_read(db, actor.event("patient.read", patient_id=patient_id), read)


def list_patients(db: Database, actor: Actor, query: PatientQuery) -> dict[str, Any]:
    authorize(db, actor, Permission.READ_PATIENTS, "patient.list")
    listing, params = queries.patient_listing(query, db.dialect)
    page = _page(db, listing, params, query)
    db.audit_soon(actor.event("patient.list", disclosed=_ids(page)))
    return page


def list_deleted(db: Database, actor: Actor, query: PageQuery) -> dict[str, Any]:
    authorize(db, actor, Permission.MANAGE_DELETED, "patient.list")
    params = queries.page_parameters(query)
    page = _page(db, queries.deleted_listing, params, query, deleted_to_api)
    db.audit_soon(actor.event("patient.list", detail="deleted patients", disclosed=_ids(page)))
    return page


def _ids(page: dict[str, Any]) -> list[int]:
    """The patients a page shows, for the access log of each (see audit_disclosures)."""
    return [item["id"] for item in page["items"]]


def _page(
    db: Database,
    listing: queries.Listing,
    params: dict[str, Any],
    query: PageQuery,
    serialize: Callable[[Sequence[Any], date], dict[str, Any]] = to_api,
) -> dict[str, Any]:
    """A page and its total, from memory while no patient has changed since it was read."""
    today = utc_now().date()
    key = (listing, tuple(sorted(params.items())), today)
    [[(revision,)]] = db.read((queries.revision, {}))
    page = db.pages.get(key, revision)
    if page is MISSING:
        rows, totals = db.read((listing.page, params), (listing.total, params))
        page = {
            "items": [serialize(row, today) for row in rows],
            "total": totals[0][0],
            "limit": query.limit,
            "offset": query.offset,
        }
        db.pages.put(key, revision, page)
    return page


def create_patient(db: Database, actor: Actor, data: PatientIn) -> dict[str, Any]:
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.create")
    values = _stored_values(data)

    def create(conn: Connection, event: Event) -> dict[str, Any]:
        now = utc_now()
        stored = {**values, "created_at": now, "updated_at": now, "version": 1}
        (patient_id,) = fetch_one_in(conn, INSERT, stored)
        event.patient_id = patient_id
        event.fields = [name for name in WRITABLE if values[name] is not None]
        return to_api(as_row({**stored, "id": patient_id}))

    return audited_write(db, actor.event("patient.create"), create)


def writable_fields(current: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a client may send, as they stand; a birth date makes the age implicit."""
    fields = {name: current[name] for name in WRITABLE if current[name] is not None}
    if "date_of_birth" in fields:
        fields.pop("age", None)
        fields["date_of_birth"] = fields["date_of_birth"].isoformat()
    return fields


def merge_patch(current: Mapping[str, Any], patch: PatientPatch) -> PatientIn:
    """Apply an RFC 7396 merge patch and validate the result as a whole patient."""
    merged = writable_fields(current)
    for name in patch.model_fields_set:
        value = getattr(patch, name)
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value.isoformat() if isinstance(value, date) else value
    return PatientIn.model_validate(merged)


def _save(
    conn: Connection, current: dict[str, Any], data: PatientIn, event: Event
) -> dict[str, Any]:
    values = _stored_values(data)
    event.fields = [name for name in WRITABLE if current[name] != values[name]]
    if not event.fields:
        return to_api(as_row(current))
    values.update(updated_at=utc_now(), version=current["version"] + 1)
    result = conn.execute(
        update(patients)
        .where(patients.c.id == current["id"], patients.c.version == current["version"])
        .values(values)
    )
    if result.rowcount != 1:
        raise VersionMismatch("The patient changed while it was being saved; reload it.", None)
    return to_api(as_row({**current, **values}))


def _update(
    db: Database,
    actor: Actor,
    patient_id: int,
    expected_version: int | None,
    new_data: Callable[[dict[str, Any]], PatientIn],
) -> dict[str, Any]:
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.update", patient_id)

    def update_patient(conn: Connection, event: Event) -> dict[str, Any]:
        current = _load(conn, patient_id)
        _check_version(current, expected_version)
        return _save(conn, current, new_data(current), event)

    return audited_write(db, actor.event("patient.update", patient_id=patient_id), update_patient)


def replace_patient(
    db: Database,
    actor: Actor,
    patient_id: int,
    data: PatientIn,
    expected_version: int | None = None,
) -> dict[str, Any]:
    return _update(db, actor, patient_id, expected_version, lambda _current: data)


def patch_patient(
    db: Database,
    actor: Actor,
    patient_id: int,
    patch: PatientPatch,
    expected_version: int | None = None,
) -> dict[str, Any]:
    return _update(
        db, actor, patient_id, expected_version, lambda current: merge_patch(current, patch)
    )


def delete_patient(
    db: Database, actor: Actor, patient_id: int, expected_version: int | None = None
) -> None:
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.delete", patient_id)

    def soft_delete(conn: Connection, _event: Event) -> None:
        current = _load(conn, patient_id)
        _check_version(current, expected_version)
        now = utc_now()
        conn.execute(
            update(patients)
            .where(patients.c.id == patient_id)
            .values(deleted_at=now, updated_at=now, version=current["version"] + 1)
        )

    audited_write(db, actor.event("patient.delete", patient_id=patient_id), soft_delete)


def restore_patient(
    db: Database, actor: Actor, patient_id: int, expected_version: int | None = None
) -> dict[str, Any]:
    """Undo a delete. An admin may restore any deleted patient; a clinician only one they
    deleted themselves, within ``OWN_DELETE_RESTORE_WINDOW`` (their "undo")."""
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.restore", patient_id)

    def restore(conn: Connection, _event: Event) -> dict[str, Any]:
        current = _load(conn, patient_id, include_deleted=True)
        if current["deleted_at"] is None:
            raise Conflict(f"Patient {patient_id} is not deleted.")
        _check_may_restore(conn, actor, patient_id)
        _check_version(current, expected_version)
        values = {"deleted_at": None, "updated_at": utc_now(), "version": current["version"] + 1}
        conn.execute(update(patients).where(patients.c.id == patient_id).values(values))
        return to_api(as_row({**current, **values}))

    return audited_write(db, actor.event("patient.restore", patient_id=patient_id), restore)


def _check_may_restore(conn: Connection, actor: Actor, patient_id: int) -> None:
    if actor.may(Permission.MANAGE_DELETED):
        return
    deletion = last_change_in(conn, patient_id)
    if (
        deletion is None
        or deletion.action != "patient.delete"
        or actor.user_id is None
        or deletion.user_id != actor.user_id
        or clock.utc_now() - clock.as_utc(deletion.at) > OWN_DELETE_RESTORE_WINDOW
    ):
        hours = OWN_DELETE_RESTORE_WINDOW // timedelta(hours=1)
        raise Forbidden(
            f"Only an admin may restore this patient: your role may restore a patient you "
            f"deleted yourself, within {hours} hours."
        )


def purge_patient(db: Database, actor: Actor, patient_id: int) -> None:
    """Remove a soft-deleted patient for good: an operator's decision, never the API's."""
    authorize(db, actor, Permission.MANAGE_DELETED, "patient.purge", patient_id)

    def purge(conn: Connection, _event: Event) -> None:
        current = _load(conn, patient_id, include_deleted=True)
        if current["deleted_at"] is None:
            raise Conflict(f"Patient {patient_id} is not deleted; delete it before purging it.")
        conn.execute(delete(patients).where(patients.c.id == patient_id))

    audited_write(db, actor.event("patient.purge", patient_id=patient_id), purge)
