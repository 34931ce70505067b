"""Patient pages under /ui/patients: list and search, detail, add, edit, delete and undo,
and the admins' deleted-patients page. Every action goes through the patients service, so
the pages enforce exactly what the API does."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from pydantic import ValidationError

from healthcare.audit.queries import AuditPageQuery, find_events, last_change
from healthcare.auth.access import Permission, authorize
from healthcare.auth.web import current_actor
from healthcare.db.database import current_database
from healthcare.errors import Conflict, NotFound, PossibleDuplicates, VersionMismatch
from healthcare.patients import service
from healthcare.patients.schemas import MergeRequest, PageQuery, PatientQuery
from healthcare.ui.blueprint import bp, page_links
from healthcare.ui.forms import PATIENT_FIELDS, patient_as_form, patient_from_form, submitted

PAGE_SIZE = 25
SORTABLE = ("name", "age", "updated_at")
LIST_FILTERS = ("q", "disease", "gender", "sort")


def _list_query() -> tuple[PatientQuery, dict[str, str], str | None]:
    """The listing asked for; a filter that is not valid is dropped, with a word about it."""
    wanted = {k: v.strip() for k, v in request.args.items() if k in LIST_FILTERS and v.strip()}
    offset = request.args.get("offset", "0")
    try:
        return PatientQuery(**wanted, offset=offset, limit=PAGE_SIZE), wanted, None
    except ValidationError:
        return PatientQuery(limit=PAGE_SIZE), {}, "That search could not be used; showing all."


@bp.get("/ui/patients")
def patient_list() -> str:
    query, filters, problem = _list_query()
    page = service.list_patients(current_database(), current_actor(), query)
    return render_template(
        "patients/list.html",
        page=page,
        filters=filters,
        problem=problem,
        sortable=SORTABLE,
        links=page_links(page, filters),
    )


@bp.get("/ui/patients/deleted")
def deleted_list() -> str:
    offset = request.args.get("offset", "0")
    query = PageQuery(offset=int(offset) if offset.isdigit() else 0, limit=PAGE_SIZE)
    page = service.list_deleted(current_database(), current_actor(), query)
    return render_template("patients/deleted.html", page=page, links=page_links(page, {}))


@bp.get("/ui/patients/<int:patient_id>")
def patient_detail(patient_id: int) -> str:
    db, actor = current_database(), current_actor()
    patient = service.get_patient(db, actor, patient_id)
    access_log = None
    if actor.may(Permission.READ_AUDIT):
        access_log = find_events(db, actor, AuditPageQuery(limit=20), patient_id=patient_id)
    return render_template(
        "patients/detail.html",
        patient=patient,
        change=last_change(db, patient_id),
        access_log=access_log,
    )


def _form_page(
    patient: dict[str, Any] | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
    conflict: int | None = None,
    duplicates: list[dict[str, Any]] | None = None,
) -> Response:
    page = render_template(
        "patients/form.html",
        patient=patient,
        values=values,
        errors=errors,
        conflict=conflict,
        duplicates=duplicates,
    )
    return Response(page, status)


def _confirmed_not_duplicate() -> bool:
    return request.form.get("confirm_not_duplicate") == "yes"


@bp.route("/ui/patients/new", methods=["GET", "POST"])
def patient_new() -> Response:
    db, actor = current_database(), current_actor()
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.create")
    if request.method == "GET":
        return _form_page(None, dict.fromkeys(PATIENT_FIELDS, ""), {})
    values = submitted(request.form, PATIENT_FIELDS)
    data, errors = patient_from_form(values)
    if data is None:
        return _form_page(None, values, errors, 422)
    try:
        patient = service.create_patient(
            db, actor, data, confirm_not_duplicate=_confirmed_not_duplicate()
        )
    except PossibleDuplicates as exc:
        return _form_page(None, values, {}, 409, duplicates=exc.candidates)
    flash({"text": f"{patient['name']} was added."})
    return redirect(url_for("ui.patient_detail", patient_id=patient["id"]), 303)


def _submitted_version() -> int:
    version = request.form.get("version", "")
    return int(version) if version.isdigit() else 0


@bp.route("/ui/patients/<int:patient_id>/edit", methods=["GET", "POST"])
def patient_edit(patient_id: int) -> Response:
    db, actor = current_database(), current_actor()
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.update", patient_id)
    if request.method == "GET":
        patient = service.get_patient(db, actor, patient_id)
        return _form_page(patient, patient_as_form(patient), {})
    values = submitted(request.form, PATIENT_FIELDS)
    stale = {"id": patient_id, "version": _submitted_version(), "name": values["name"]}
    data, errors = patient_from_form(values)
    if data is None:
        return _form_page(stale, values, errors, 422)
    try:
        patient = service.replace_patient(
            db,
            actor,
            patient_id,
            data,
            stale["version"],
            confirm_not_duplicate=_confirmed_not_duplicate(),
        )
    except VersionMismatch as exc:
        return _form_page(stale, values, {}, 409, conflict=exc.current_version or 0)
    except PossibleDuplicates as exc:
        return _form_page(stale, values, {}, 409, duplicates=exc.candidates)
    flash({"text": "Your changes were saved."})
    return redirect(url_for("ui.patient_detail", patient_id=patient["id"]), 303)


@bp.route("/ui/patients/<int:patient_id>/delete", methods=["GET", "POST"])
def patient_delete(patient_id: int) -> Response | str:
    db, actor = current_database(), current_actor()
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.delete", patient_id)
    if request.method == "GET":
        patient = service.get_patient(db, actor, patient_id)
        return render_template("patients/delete.html", patient=patient, changed=False)
    try:
        service.delete_patient(db, actor, patient_id, _submitted_version())
    except VersionMismatch:
        patient = service.get_patient(db, actor, patient_id)
        page = render_template("patients/delete.html", patient=patient, changed=True)
        return Response(page, 409)
    flash({"text": f"{request.form.get('name', 'The patient')} was deleted.", "undo": patient_id})
    return redirect(url_for("ui.patient_list"), 303)


@bp.post("/ui/patients/<int:patient_id>/restore")
def patient_restore(patient_id: int) -> Response:
    try:
        patient = service.restore_patient(current_database(), current_actor(), patient_id)
    except Conflict:
        flash({"text": "That patient is not deleted; nothing to restore."})
    else:
        flash({"text": f"{patient['name']} was restored."})
    return redirect(url_for("ui.patient_detail", patient_id=patient_id), 303)


HISTORY_LABELS = {
    "mrn": "Record number", "name": "Full name", "family_name": "Family name",
    "given_names": "Given names", "date_of_birth": "Date of birth", "address_lines": "Address",
    "postal_code": "Postal code", "identifiers": "Other identifiers", "merged_into": "Merged into",
}  # fmt: skip
HISTORY_ACTIONS = {
    "patient.create": "added", "patient.update": "changed", "patient.delete": "deleted",
    "patient.restore": "restored", "patient.migrate": "as it stood when history began",
    "patient.merge": "merged", "patient.unmerge": "merge undone",
}  # fmt: skip


def _shown(value: Any) -> str:
    """A version's value in words."""
    if value is None or value == []:
        return "(empty)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(f"{i['system']}: {i['value']}" for i in value)
    return str(value)


@bp.get("/ui/patients/<int:patient_id>/history")
def patient_history(patient_id: int) -> str:
    db, actor = current_database(), current_actor()
    history = service.patient_history(db, actor, patient_id)
    newest = history["items"][0]["values"] if history["items"] else {}
    patient = {"id": patient_id, "name": newest.get("name", ""), "mrn": newest.get("mrn")}
    return render_template(
        "patients/history.html",
        patient=patient,
        history=history,
        labels=HISTORY_LABELS,
        actions=HISTORY_ACTIONS,
        shown=_shown,
    )


MERGE_FIELDS = (
    "name", "family_name", "given_names", "date_of_birth", "gender", "phone", "email",
    "address_lines", "city", "postal_code", "country", "disease", "notes",
)  # fmt: skip


def _merge_source(db: Any, actor: Any, wanted: str) -> dict[str, Any] | None:
    """The record a person named by id or record number, if it can be read."""
    if wanted.isdigit():
        try:
            return service.get_patient(db, actor, int(wanted))
        except NotFound:
            return None
    try:
        query = PatientQuery(mrn=wanted, limit=1)
    except ValidationError:
        return None
    items = service.list_patients(db, actor, query)["items"]
    return items[0] if items else None


@bp.route("/ui/patients/<int:patient_id>/merge", methods=["GET", "POST"])
def patient_merge(patient_id: int) -> Response:
    """Merge a duplicate into this record, choosing for each field which value stays."""
    db, actor = current_database(), current_actor()
    authorize(db, actor, Permission.WRITE_PATIENTS, "patient.merge", patient_id)
    if request.method == "POST":
        return _merge_submitted(db, actor, patient_id)
    target = service.get_patient(db, actor, patient_id)
    wanted = request.args.get("source", "").strip()
    source = _merge_source(db, actor, wanted) if wanted else None
    problem = None
    if wanted and (source is None or source["id"] == patient_id or source["merged_into"]):
        problem, source = "No other current record has that number.", None
    page = render_template(
        "patients/merge.html",
        target=target,
        source=source,
        wanted=wanted,
        problem=problem,
        fields=MERGE_FIELDS,
        labels=HISTORY_LABELS,
        shown=_shown,
    )
    return Response(page, 404 if problem else 200)


def _merge_submitted(db: Any, actor: Any, patient_id: int) -> Response:
    form = request.form
    chosen = [name for name in MERGE_FIELDS if form.get(f"keep-{name}") == "source"]
    try:
        merge = MergeRequest(
            source_id=int(form.get("source_id", "0")),
            source_version=int(form.get("source_version", "0")),
            target_version=int(form.get("target_version", "0")),
            take_from_source=chosen,
        )
        service.merge_patients(db, actor, patient_id, merge)
    except (ValueError, ValidationError, VersionMismatch, NotFound, Conflict):
        flash({"text": "One of the records changed or is gone, or the choice was not valid; "
                       "nothing was merged. Check both records and try again."})  # fmt: skip
        return redirect(url_for("ui.patient_detail", patient_id=patient_id), 303)
    flash({"text": f"Record {merge.source_id} was merged into this one."})
    return redirect(url_for("ui.patient_detail", patient_id=patient_id), 303)


@bp.post("/ui/patients/<int:patient_id>/unmerge")
def patient_unmerge(patient_id: int) -> Response:
    """An admin's undo of the merge that closed this record."""
    try:
        service.undo_merge(current_database(), current_actor(), patient_id)
    except Conflict as refused:
        flash({"text": f"Nothing was undone: {refused.detail}"})
    else:
        flash({"text": "The merge was undone: both records are as they were before it."})
    return redirect(url_for("ui.patient_detail", patient_id=patient_id), 303)
