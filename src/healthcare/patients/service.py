"""The patient use cases. Both front ends call these; no rule about patients lives elsewhere."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select, update

from healthcare import clock
from healthcare.audit.pending import PendingAudit
from healthcare.audit.queries import last_change_in
from healthcare.audit.record import audited_read, audited_write, record_refusal
from healthcare.audit.trail import Event, append
from healthcare.auth.access import Actor, Permission, authorize
from healthcare.clock import rfc3339, utc_now
from healthcare.db.database import Database
from healthcare.db.group_commit import when_done
from healthcare.db.ids import reserve_ids
from healthcare.db.models import patient_identifiers, patients
from healthcare.db.raw import MultiRowInsert
from healthcare.db.revision_cache import MISSING
from healthcare.errors import (
    Conflict,
    Deleted,
    Forbidden,
    NotFound,
    PossibleDuplicates,
    ServiceError,
    VersionMismatch,
)
from healthcare.patients import history, identifiers, matching, queries
from healthcare.patients.schemas import (
    NAME_FIELDS,
    MergeRequest,
    PageQuery,
    PatientIn,
    PatientPatch,
    PatientQuery,
    age_on,
)
from healthcare.patients.search import fold

WRITABLE = tuple(PatientIn.model_fields)
NAME_FIELDS_SET = frozenset(NAME_FIELDS)  # name, family_name, given_names
# A change to one of these is checked for likely duplicates.
IDENTITY_FIELDS = (*NAME_FIELDS, "date_of_birth", "phone", "email", "identifiers")
FIELDS = tuple(column.key for column in queries.PUBLIC_COLUMNS)
OWN_DELETE_RESTORE_WINDOW = timedelta(hours=24)
ADDRESS = ("address_lines", "city", "postal_code", "country")
# Every column a new patient fills (deleted_at stays empty), in the order of its row tuple.
NEW_ROW = tuple(column.key for column in patients.c if column.key != "deleted_at")
INSERT = MultiRowInsert(patients, NEW_ROW)
HOLD = MultiRowInsert(patient_identifiers, ("patient_id", "system", "value"))


def to_api(row: Sequence[Any], today: date | None = None) -> dict[str, Any]:
    """A stored row (the columns of ``FIELDS``, in order) as the API shows it.

    The age follows the birth date as time passes. Rows from the raw read path carry SQLite's
    text for dates and times, rows built in Python carry objects; both serialise the same."""
    stored = dict(zip(FIELDS, row, strict=False))
    born, age = stored["date_of_birth"], stored["age"]
    if born is not None:
        if isinstance(born, str):
            born = date.fromisoformat(born)
        age = age_on(born, today or utc_now().date())
        born = born.isoformat()
    identifiers = stored["identifiers"]
    return {
        "id": stored["id"],
        "mrn": stored["mrn"],
        "name": stored["name"],
        "family_name": stored["family_name"],
        "given_names": stored["given_names"],
        "age": age,
        "disease": stored["disease"],
        "gender": stored["gender"],
        "date_of_birth": born,
        "phone": stored["phone"],
        "email": stored["email"],
        **{name: stored[name] for name in ADDRESS},
        "identifiers": orjson.loads(identifiers) if identifiers else [],
        "notes": stored["notes"],
        "merged_into": stored["merged_into"],
        "created_at": rfc3339(stored["created_at"]),
        "updated_at": rfc3339(stored["updated_at"]),
        "version": stored["version"],
    }


def deleted_to_api(row: Sequence[Any], today: date | None = None) -> dict[str, Any]:
    return {**to_api(row, today), "deleted_at": rfc3339(row[len(FIELDS)])}


def as_row(values: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(values[name] for name in FIELDS)


def stored_values(data: PatientIn) -> dict[str, Any]:
    """The columns a patient's data fills: its fields, its identifiers as JSON, search keys."""
    values = data.model_dump()
    values["identifiers"] = orjson.dumps(values["identifiers"] or []).decode()
    values["name_search"] = fold(data.name or "")
    values["family_search"] = identifiers.folded(data.family_name)
    values["given_search"] = identifiers.folded(data.given_names)
    values["phone_key"] = identifiers.phone_key(data.phone)
    values["name_key"] = matching.name_key(data.family_name, data.given_names)
    return values


def _load(conn: Connection, patient_id: int, *, include_deleted: bool = False) -> dict[str, Any]:
    row = conn.execute(queries.with_deleted_by_id, {"patient_id": patient_id}).mappings().first()
    if row is None:
        raise NotFound(f"No patient with id {patient_id}.")
    if row["deleted_at"] is not None and not include_deleted:
        raise Deleted(f"Patient {patient_id} has been deleted.")
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
            return _merged_record(db, patient_id)
        return to_api(rows[0])

    return audited_read(db, actor.event("patient.read", patient_id=patient_id), read)


def records_merged_into(
    db: Database, actor: Actor, patient_ids: Sequence[int]
) -> dict[int, list[int]]:
    """For each of ``patient_ids``, the records merged into it (FHIR's ``replaces`` links), for
    a caller who has just read those patients (those reads are the audited disclosure)."""
    authorize(db, actor, Permission.READ_PATIENTS, "patient.read")
    if not patient_ids:
        return {}
    statement = (
        select(patients.c.merged_into, patients.c.id)
        .where(patients.c.merged_into.in_(patient_ids))
        .order_by(patients.c.id)
    )
    found: dict[int, list[int]] = {}
    with db.reading() as conn:
        for survivor, merged in conn.execute(statement):
            found.setdefault(survivor, []).append(merged)
    return found


def _merged_record(db: Database, patient_id: int) -> dict[str, Any]:
    """A record merged into another stays readable, saying which (its merged_into)."""
    with db.engine.connect() as conn:
        row = conn.execute(queries.with_deleted_by_id, {"patient_id": patient_id}).first()
    if row is None:
        raise NotFound(f"No patient with id {patient_id}.")
    if row.merged_into is None:
        raise Deleted(f"Patient {patient_id} has been deleted.")
    return to_api(row)


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
        rows, total = _rows_and_total(db, listing, params)
        page = {
            "items": [serialize(row, today) for row in rows],
            "total": total,
            "limit": query.limit,
            "offset": query.offset,
        }
        db.pages.put(key, revision, page)
    return page


def _rows_and_total(
    db: Database, listing: queries.Listing, params: dict[str, Any]
) -> tuple[list[tuple[Any, ...]], int]:
    if listing.total is None:  # each row starts with the total; past the end, one row of nulls
        [rows] = db.read((listing.page, params))
        return [row[1:] for row in rows if row[1] is not None], rows[0][0]
    rows, [(total,)] = db.read((listing.page, params), (listing.total, params))
    return rows, total


@dataclass(frozen=True)
class NewRequest:
    """A create waiting for its write transaction: the data, its stored values (computed
    once: the duplicate check uses them too), its audit event, whether the caller confirmed
    it is not a duplicate, the record-number prefix, and the process's waiting audit events
    (the transaction carries them, ahead of its own)."""

    data: PatientIn
    values: dict[str, Any]
    event: Event
    confirmed: bool
    mrn_prefix: str
    pending: PendingAudit

    @cached_property
    def demographics(self) -> matching.Demographics:
        return matching.Demographics.of(self.values)


def create_patient(
    db: Database, actor: Actor, data: PatientIn, *, confirm_not_duplicate: bool = False
) -> dict[str, Any]:
    """Create a patient, unless it looks like patients on record and the caller has not
    confirmed that it is somebody else (PossibleDuplicates, naming them). The creates of
    other requests that arrive meanwhile are checked and stored with it (``create_each``)."""
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.create")
    event = actor.event("patient.create")
    request = NewRequest(
        data, stored_values(data), event, confirm_not_duplicate, db.mrn_prefix, db.pending_audit
    )
    try:
        return db.write_together(create_each, request)
    except Exception as exc:  # nothing was stored: the id an attempt took names nobody
        record_refusal(db, dataclasses.replace(event, patient_id=None), exc)
        raise


def create_each(
    conn: Connection, requests: list[NewRequest]
) -> list[dict[str, Any] | ServiceError]:
    """Creates that arrived together, in the caller's write transaction: their duplicate
    checks with one candidate lookup, their rows with one insert per table, their audit
    events. Each is answered with its patient, or with the exception that refuses it (a
    likely duplicate, a held identifier), for which nothing is written.

    Two requests of one call that may be the same person (or share an identifier) are not
    stored together: the later one, and those after it, are checked again once the first is
    stored, in the same transaction, exactly as if they had come after it. Like every change,
    the transaction carries the process's waiting audit events, ahead of its own."""
    _carry_waiting_events(conn, requests[0].pending)
    queries.lock_blocks(conn, [request.demographics for request in requests])
    answers: dict[int, dict[str, Any] | ServiceError] = {}
    waiting = list(range(len(requests)))
    while waiting:
        accepted: list[int] = []
        later: list[int] = []
        found = likely_duplicates_of_each(conn, [requests[i].values for i in waiting])
        for i, candidates in zip(waiting, found, strict=True):
            request = requests[i]
            try:
                _refuse_likely(candidates, request.confirmed, request.event)
                _refuse_held_identifiers(conn, None, request.data)
            except ServiceError as exc:
                answers[i] = exc
                continue
            clash = later or any(_may_be_one(request, requests[j]) for j in accepted)
            (later if clash else accepted).append(i)
        if accepted:
            new = [(requests[i].data, requests[i].values, requests[i].event) for i in accepted]
            stored = insert_patients(conn, new, requests[0].mrn_prefix)
            append(conn, [requests[i].event for i in accepted])
            answers.update((i, to_api(as_row(r))) for i, r in zip(accepted, stored, strict=True))
        waiting = later
    return [answers[i] for i in range(len(requests))]


def _carry_waiting_events(conn: Connection, pending: PendingAudit) -> None:
    """Put the process's waiting audit events into this transaction's part of the chain;
    they wait again if it does not commit."""
    carried = pending.take()
    when_done(conn, lambda: pending.written(carried), lambda: pending.put_back(carried))
    append(conn, carried)


def _may_be_one(request: NewRequest, other: NewRequest) -> bool:
    """Whether two new patients share an identifier or, unless ``request`` is confirmed as
    somebody else, may be the same person."""
    mine = {(i.system, i.value) for i in request.data.identifiers or []}
    if any((i.system, i.value) in mine for i in other.data.identifiers or []):
        return True
    if request.confirmed:
        return False
    return matching.score(request.demographics, other.demographics) >= matching.THRESHOLD


NewPatient = tuple[PatientIn, dict[str, Any], Event]  # the data, its stored values, its event


def insert_patients(
    conn: Connection, batch: Sequence[NewPatient], mrn_prefix: str
) -> list[dict[str, Any]]:
    """New patients in the caller's transaction, each with its record number, identifiers and
    first version, its audit event completed; their stored values. One statement per table
    for a whole batch: the ids are taken first, so each row goes in whole with its record
    number. The caller has checked the identifiers (the unique constraint refuses a clash)
    and computed the stored values (once: the duplicate check uses them too)."""
    now = utc_now()
    ids = reserve_ids(conn, patients, len(batch))
    rows = [
        {
            **values,
            "id": patient_id,
            "mrn": identifiers.mrn_for(patient_id, mrn_prefix),
            "merged_into": None,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        for (_data, values, _event), patient_id in zip(batch, ids, strict=True)
    ]
    INSERT.run(conn, [tuple(row[name] for name in NEW_ROW) for row in rows])
    HOLD.run(
        conn,
        [
            (row["id"], i.system, i.value)
            for (data, _values, _event), row in zip(batch, rows, strict=True)
            for i in data.identifiers or []
        ],
    )
    for (data, _values, event), row in zip(batch, rows, strict=True):
        event.patient_id = row["id"]
        event.fields = _filled_fields(data, row)
    history.record_versions(
        conn, [(row, event) for (_data, _values, event), row in zip(batch, rows, strict=True)], now
    )
    return rows


def _filled_fields(data: PatientIn, values: Mapping[str, Any]) -> list[str]:
    """The fields a new patient has; name parts count when sent, not when derived."""
    derived = NAME_FIELDS_SET - data.model_fields_set
    return [
        name
        for name in WRITABLE
        if values[name] not in (None, "[]") and not (name in derived and name != "name")
    ]


def writable_fields(current: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a client may send, as they stand; a birth date makes the age implicit."""
    fields = {name: current[name] for name in WRITABLE if current[name] is not None}
    fields["identifiers"] = orjson.loads(fields.get("identifiers") or "[]")
    if "date_of_birth" in fields:
        fields.pop("age", None)
        fields["date_of_birth"] = fields["date_of_birth"].isoformat()
    return fields


def _derived_again(patched: set[str]) -> tuple[str, ...]:
    """A new display name gives new name parts; new parts give a new display name."""
    if "name" in patched:
        return () if patched & {"family_name", "given_names"} else ("family_name", "given_names")
    return ("name",) if patched & {"family_name", "given_names"} else ()


def merge_patch(current: Mapping[str, Any], patch: PatientPatch) -> PatientIn:
    """Apply an RFC 7396 merge patch and validate the result as a whole patient."""
    merged = writable_fields(current)
    for name in _derived_again(patch.model_fields_set):
        merged.pop(name, None)
    for name in patch.model_fields_set:
        value = getattr(patch, name)
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value.isoformat() if isinstance(value, date) else value
    return PatientIn.model_validate(merged)


def _save(
    conn: Connection,
    current: dict[str, Any],
    data: PatientIn,
    event: Event,
    confirm_not_duplicate: bool = False,
    merge_at: datetime | None = None,
) -> dict[str, Any]:
    """Store ``data`` as the next version of ``current``, if it changes anything. A merge and
    its undo (``merge_at``) always make a version of the survivor, stamped with the time of the
    source's version: its history shows the merge, and an undo can tell whose merge it was."""
    values = stored_values(data)
    event.fields = [name for name in WRITABLE if current[name] != values[name]]
    if not event.fields and merge_at is None:
        return to_api(as_row(current))
    if set(event.fields) & set(IDENTITY_FIELDS):
        _check_duplicates(conn, values, current["id"], confirm_not_duplicate, event)
    now = merge_at or utc_now()
    values.update(updated_at=now, version=current["version"] + 1)
    result = conn.execute(
        update(patients)
        .where(patients.c.id == current["id"], patients.c.version == current["version"])
        .values(values)
    )
    if result.rowcount != 1:
        raise VersionMismatch("The patient changed while it was being saved; reload it.", None)
    if "identifiers" in event.fields:
        _keep_identifiers(conn, current["id"], data)
    stored = {**current, **values}
    history.record_version(conn, stored, event, now)
    return to_api(as_row(stored))


def likely_duplicates(
    conn: Connection, values: Mapping[str, Any], exclude: int | None
) -> list[dict[str, Any]]:
    """Patients on record that are likely the person described by ``values``, best first."""
    [found] = likely_duplicates_of_each(conn, [values], exclude)
    return found


def likely_duplicates_of_each(
    conn: Connection, described: Sequence[Mapping[str, Any]], exclude: int | None = None
) -> list[list[dict[str, Any]]]:
    """``likely_duplicates`` of each set of demographics, with one candidate lookup for all
    of them; a candidate several people share is read and prepared once."""
    wanted = [matching.Demographics.of(values) for values in described]
    blocks = queries.duplicate_candidates(conn, wanted)
    people: dict[int, matching.Demographics] = {}
    return [
        _likely(person, rows, people, exclude) for person, rows in zip(wanted, blocks, strict=True)
    ]


def _likely(
    wanted: matching.Demographics,
    block: list[dict[str, Any]],
    people: dict[int, matching.Demographics],
    exclude: int | None,
) -> list[dict[str, Any]]:
    rows = {row["id"]: row for row in block if row["id"] != exclude}
    for pid, row in rows.items():
        if pid not in people:
            people[pid] = matching.Demographics.of(row)
    return [
        {
            "id": pid,
            "mrn": rows[pid]["mrn"],
            "name": rows[pid]["name"],
            "date_of_birth": rows[pid]["date_of_birth"] and rows[pid]["date_of_birth"].isoformat(),
            "score": points,
            "reasons": matching.reasons(wanted, people[pid]),
            "href": f"/patients/{pid}",
        }
        for pid, points in matching.ranked(wanted, ((pid, people[pid]) for pid in rows))
    ]


def duplicates_of_each(conn: Connection, new: Sequence[PatientIn]) -> list[list[dict[str, Any]]]:
    """For each new patient, the patients on record that are likely the same person."""
    return likely_duplicates_of_each(conn, [stored_values(data) for data in new])


def _check_duplicates(
    conn: Connection,
    values: Mapping[str, Any],
    exclude: int | None,
    confirmed: bool,
    event: Event,
) -> None:
    """Refuse a likely duplicate unless the caller confirmed it is somebody else. Another
    transaction writing a patient who shares a block waits until this one ends, and this
    one for it (``queries.lock_blocks``)."""
    queries.lock_blocks(conn, [matching.Demographics.of(values)])
    _refuse_likely([] if confirmed else likely_duplicates(conn, values, exclude), confirmed, event)


def _refuse_likely(candidates: list[dict[str, Any]], confirmed: bool, event: Event) -> None:
    """PossibleDuplicates naming the candidates, unless the caller confirmed it is somebody
    else (which the event records)."""
    if confirmed:
        event.detail = "confirmed not a duplicate"
        return
    if candidates:
        names = ", ".join(f"{c['name']} ({c['mrn']}, id {c['id']})" for c in candidates)
        raise PossibleDuplicates(
            f"This looks like {names}. If it is somebody else, send it again confirming that "
            "it is not a duplicate.",
            candidates,
        )


def find_matches(db: Database, actor: Actor, values: Mapping[str, Any]) -> dict[str, Any]:
    """Who might this be? The likely patients for a set of demographics (audited)."""
    authorize(db, actor, Permission.READ_PATIENTS, "patient.match")

    def read() -> dict[str, Any]:
        with db.engine.connect() as conn:
            return {"items": likely_duplicates(conn, values, None)}

    return audited_read(db, actor.event("patient.match"), read)


def _keep_identifiers(conn: Connection, patient_id: int, data: PatientIn) -> None:
    """Store the patient's identifiers, refusing one that another patient holds."""
    _refuse_held_identifiers(conn, patient_id, data)
    conn.execute(delete(patient_identifiers).where(patient_identifiers.c.patient_id == patient_id))
    HOLD.run(conn, [(patient_id, i.system, i.value) for i in data.identifiers or []])


def _refuse_held_identifiers(conn: Connection, patient_id: int | None, data: PatientIn) -> None:
    """Conflict if a patient other than ``patient_id`` (any, for a new one) holds one of the
    identifiers ``data`` lists."""
    for system, value in ((i.system, i.value) for i in data.identifiers or []):
        held = select(patient_identifiers.c.patient_id).where(
            patient_identifiers.c.system == system, patient_identifiers.c.value == value
        )
        if patient_id is not None:
            held = held.where(patient_identifiers.c.patient_id != patient_id)
        holder = conn.execute(held).scalar()
        if holder is not None:
            raise Conflict(f"Patient {holder} already has the identifier {system}|{value}.")


def _update(
    db: Database,
    actor: Actor,
    patient_id: int,
    expected_version: int | None,
    new_data: Callable[[dict[str, Any]], PatientIn],
    confirm_not_duplicate: bool,
) -> dict[str, Any]:
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.update", patient_id)

    def update_patient(conn: Connection, event: Event) -> dict[str, Any]:
        current = _load(conn, patient_id)
        _check_version(current, expected_version)
        return _save(conn, current, new_data(current), event, confirm_not_duplicate)

    return audited_write(db, actor.event("patient.update", patient_id=patient_id), update_patient)


def replace_patient(
    db: Database,
    actor: Actor,
    patient_id: int,
    data: PatientIn,
    expected_version: int | None = None,
    *,
    confirm_not_duplicate: bool = False,
) -> dict[str, Any]:
    return _update(
        db, actor, patient_id, expected_version, lambda _current: data, confirm_not_duplicate
    )


def patch_patient(
    db: Database,
    actor: Actor,
    patient_id: int,
    patch: PatientPatch,
    expected_version: int | None = None,
    *,
    confirm_not_duplicate: bool = False,
) -> dict[str, Any]:
    return _update(
        db,
        actor,
        patient_id,
        expected_version,
        lambda current: merge_patch(current, patch),
        confirm_not_duplicate,
    )


def delete_patient(
    db: Database, actor: Actor, patient_id: int, expected_version: int | None = None
) -> None:
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.delete", patient_id)

    def soft_delete(conn: Connection, event: Event) -> None:
        current = _load(conn, patient_id)
        _check_version(current, expected_version)
        now = utc_now()
        values = {"deleted_at": now, "updated_at": now, "version": current["version"] + 1}
        conn.execute(update(patients).where(patients.c.id == patient_id).values(values))
        history.record_version(conn, {**current, **values}, event, now)

    audited_write(db, actor.event("patient.delete", patient_id=patient_id), soft_delete)


def restore_patient(
    db: Database, actor: Actor, patient_id: int, expected_version: int | None = None
) -> dict[str, Any]:
    """Undo a delete. An admin may restore any deleted patient; a clinician only one they
    deleted themselves, within ``OWN_DELETE_RESTORE_WINDOW`` (their "undo")."""
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.restore", patient_id)

    def restore(conn: Connection, event: Event) -> dict[str, Any]:
        current = _load(conn, patient_id, include_deleted=True)
        if current["deleted_at"] is None:
            raise Conflict(f"Patient {patient_id} is not deleted.")
        if current["merged_into"] is not None:
            raise Conflict(f"Patient {patient_id} was merged; an admin can undo the merge.")
        _check_may_restore(conn, actor, patient_id)
        _check_version(current, expected_version)
        values = {"deleted_at": None, "updated_at": utc_now(), "version": current["version"] + 1}
        conn.execute(update(patients).where(patients.c.id == patient_id).values(values))
        history.record_version(conn, {**current, **values}, event, values["updated_at"])
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
        history.forget(conn, patient_id)
        conn.execute(
            delete(patient_identifiers).where(patient_identifiers.c.patient_id == patient_id)
        )
        conn.execute(delete(patients).where(patients.c.id == patient_id))

    audited_write(db, actor.event("patient.purge", patient_id=patient_id), purge)


def _readable_history(conn: Connection, actor: Actor, patient_id: int) -> None:
    """A deleted patient's history is for those who may see deleted patients."""
    current = _load(conn, patient_id, include_deleted=True)
    if current["deleted_at"] is not None and not actor.may(Permission.MANAGE_DELETED):
        raise NotFound(f"No patient with id {patient_id}.")


def patient_history(db: Database, actor: Actor, patient_id: int) -> dict[str, Any]:
    """Every version of a patient, newest first, with what each changed: read like the record."""
    authorize(db, actor, Permission.READ_PATIENTS, "patient.read", patient_id)

    def read() -> dict[str, Any]:
        with db.engine.connect() as conn:
            _readable_history(conn, actor, patient_id)
            return {"items": history.versions(conn, patient_id)}

    event = actor.event("patient.read", patient_id=patient_id, detail="history")
    return audited_read(db, event, read)


def patient_version(db: Database, actor: Actor, patient_id: int, number: int) -> dict[str, Any]:
    authorize(db, actor, Permission.READ_PATIENTS, "patient.read", patient_id)

    def read() -> dict[str, Any]:
        with db.engine.connect() as conn:
            _readable_history(conn, actor, patient_id)
            version = history.one_version(conn, patient_id, number)
        if version is None:
            raise NotFound(f"Patient {patient_id} has no version {number}.")
        return version

    event = actor.event("patient.read", patient_id=patient_id, detail=f"history version {number}")
    return audited_read(db, event, read)


def merge_patients(
    db: Database, actor: Actor, target_id: int, request: MergeRequest
) -> dict[str, Any]:
    """Merge the source record into the target (the survivor), in one transaction: the target
    takes the source's value for each field the request chooses, and all the identifiers of
    both; the source is closed as "merged into" the target. Both versions must be current."""
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.merge", target_id)

    def merge(conn: Connection, event: Event) -> dict[str, Any]:
        if request.source_id == target_id:
            raise Conflict("A patient cannot be merged into itself.")
        target, source = _load(conn, target_id), _load(conn, request.source_id)
        _check_version(target, request.target_version)
        _check_version(source, request.source_version)
        merged = _merged_fields(target, source, request.take_from_source)
        # Blocks before rows, as every change takes them: the survivor's check would otherwise
        # lock them with the source's row already held, and an edit of the source waits the
        # other way round.
        queries.lock_blocks(conn, [matching.Demographics.of(stored_values(merged))])
        _close_as_merged(conn, source, target_id, event)
        survivor = _save(conn, target, merged, event, True, merge_at=event.at)
        event.detail = f"merged {source['id']} into {target_id}"
        return survivor

    return audited_write(db, actor.event("patient.merge", patient_id=target_id), merge)


def _merged_fields(
    target: Mapping[str, Any], source: Mapping[str, Any], from_source: Sequence[str]
) -> PatientIn:
    merged, theirs = writable_fields(target), writable_fields(source)
    for name in from_source:
        if name in theirs:
            merged[name] = theirs[name]
        else:
            merged.pop(name, None)
    if "date_of_birth" in merged:
        merged.pop("age", None)
    both = [*merged["identifiers"], *theirs["identifiers"]]
    merged["identifiers"] = [dict(pair) for pair in dict.fromkeys(tuple(i.items()) for i in both)]
    return PatientIn.model_validate(merged)


def _close_as_merged(
    conn: Connection, source: dict[str, Any], target_id: int, event: Event
) -> None:
    """The source, deleted and pointing at the survivor; its identifiers go with it."""
    now = event.at
    values = {
        "deleted_at": now,
        "updated_at": now,
        "merged_into": target_id,
        "identifiers": "[]",
        "version": source["version"] + 1,
    }
    conn.execute(
        delete(patient_identifiers).where(patient_identifiers.c.patient_id == source["id"])
    )
    conn.execute(update(patients).where(patients.c.id == source["id"]).values(values))
    history.record_version(conn, {**source, **values}, event, now)


def undo_merge(db: Database, actor: Actor, source_id: int) -> dict[str, Any]:
    """An admin's undo: both records as they were before the merge, if the survivor has not
    changed since, by an edit or another merge (otherwise 409: undo it by hand from the
    history)."""
    authorize(db, actor, Permission.MANAGE_DELETED, "patient.unmerge", source_id)

    def unmerge(conn: Connection, event: Event) -> dict[str, Any]:
        source = _load(conn, source_id, include_deleted=True)
        if source["merged_into"] is None:
            raise Conflict(f"Patient {source_id} is not merged.")
        target = _load(conn, source["merged_into"])
        if not _last_change_is_the_merge_of(conn, target, source):
            raise Conflict(
                f"Patient {target['id']} has changed since the merge; undo it by hand from "
                "the history of both records."
            )
        before = _version_data(conn, target["id"], target["version"] - 1)
        _save(conn, target, before, event, True, merge_at=event.at)
        reopened = _reopen(
            conn, source, _version_data(conn, source_id, source["version"] - 1), event
        )
        event.detail = f"unmerged {source_id} from {target['id']}"
        return reopened

    return audited_write(db, actor.event("patient.unmerge", patient_id=source_id), unmerge)


def _last_change_is_the_merge_of(
    conn: Connection, target: Mapping[str, Any], source: Mapping[str, Any]
) -> bool:
    merge = history.one_version(conn, target["id"], target["version"])
    closed = history.one_version(conn, source["id"], source["version"])
    return (
        merge is not None
        and closed is not None
        and merge["action"] == closed["action"] == "patient.merge"
        and merge["changed_at"] == closed["changed_at"]
    )


def _version_data(conn: Connection, patient_id: int, number: int) -> PatientIn:
    version = history.one_version(conn, patient_id, number)
    if version is None:
        raise Conflict(f"Patient {patient_id} has no version {number} to go back to.")
    values = {name: version["values"].get(name) for name in WRITABLE}
    if values["date_of_birth"]:
        values.pop("age")
    return PatientIn.model_validate({k: v for k, v in values.items() if v is not None})


def _reopen(
    conn: Connection, source: dict[str, Any], data: PatientIn, event: Event
) -> dict[str, Any]:
    now = utc_now()
    values = {
        **stored_values(data),
        "deleted_at": None,
        "merged_into": None,
        "updated_at": now,
        "version": source["version"] + 1,
    }
    conn.execute(update(patients).where(patients.c.id == source["id"]).values(values))
    _keep_identifiers(conn, source["id"], data)
    stored = {**source, **values}
    history.record_version(conn, stored, event, now)
    return to_api(as_row(stored))
