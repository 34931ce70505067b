"""/fhir: FHIR R4 Patient interactions over the same use cases as the JSON API and the UI."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Response, abort, request
from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

from healthcare.auth.web import current_actor
from healthcare.clock import rfc3339, utc_now
from healthcare.db.database import current_database
from healthcare.errors import Deleted, ServiceError
from healthcare.fhir import outcome
from healthcare.fhir.capability import capability_statement
from healthcare.fhir.outcome import fhir_response
from healthcare.fhir.resources import InvalidRequest, parse_patient, patient_input, patient_resource
from healthcare.fhir.search import search_bundle, search_query
from healthcare.patients import service
from healthcare.patients.schemas import MAX_PATIENT_ID, PatientIn

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
ID = f"<int(min=1, max={MAX_PATIENT_ID}):patient_id>"
STARTED = rfc3339(utc_now())
BODY_TYPES = frozenset({"application/fhir+json", "application/json"})
HISTORY_METHODS = {"patient.create": ("POST", "201"), "patient.delete": ("DELETE", "204")}

bp.register_error_handler(ServiceError, outcome.service_refusal)
bp.register_error_handler(InvalidRequest, outcome.invalid_request)
bp.register_error_handler(ValidationError, outcome.invalid_patient)


class AmbiguousCondition(ServiceError):
    status = 412
    title = "Precondition failed"
    outcome = "invalid"


def base_url() -> str:
    return request.url_root.rstrip("/") + bp.url_prefix


def weak_etag(version: int | str) -> str:
    return f'W/"{version}"'


def with_replaces(patients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The patients with the records merged into each (their ``replaces`` links)."""
    merged = service.records_merged_into(
        current_database(), current_actor(), [p["id"] for p in patients]
    )
    return [{**p, "replaces": merged.get(p["id"], [])} for p in patients]


def resource_of(patient: dict[str, Any]) -> dict[str, Any]:
    return patient_resource(patient, patient["id"], patient["version"], patient["updated_at"])


def resource_response(patient: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return fhir_response(
        resource_of(patient), status, ETag=weak_etag(patient["version"]), **headers
    )


def if_match_version() -> int | None:
    """The version named by If-Match (W/"n" or "n"): None when absent, 0 (matches nothing)
    when it names no version."""
    if_match = request.if_match
    if not if_match:
        return None
    tags = if_match.as_set(include_weak=True)
    return next((int(tag) for tag in tags if tag.isdigit()), 0)


def confirmed() -> bool:
    """``?confirm_not_duplicate=true``: the client checked that this is somebody else (as on
    the JSON API); without it a likely duplicate is refused with 409 naming the candidates."""
    return request.args.get("confirm_not_duplicate") == "true"


def posted_patient() -> PatientIn:
    """The request's Patient resource as a record's fields; 415/400/422 as OperationOutcome."""
    if request.mimetype not in BODY_TYPES:
        abort(415, description="Send the resource as application/fhir+json.")
    resource = parse_patient(request.get_json(silent=True))
    return patient_input(resource)


@bp.get("/metadata")
def metadata() -> Response:
    return fhir_response(capability_statement(base_url(), STARTED))


@bp.get("/Patient")
def search() -> Response:
    query = search_query(request.args)
    page = service.list_patients(current_database(), current_actor(), query.criteria)
    page = {**page, "items": with_replaces(page["items"])}
    return fhir_response(search_bundle(page, query, base_url()))


@bp.post("/Patient")
def create() -> Response:
    data = posted_patient()
    condition = request.headers.get("If-None-Exist")
    if condition:
        existing = _existing(condition)
        if existing is not None:
            return resource_response(existing)
    patient = service.create_patient(
        current_database(), current_actor(), data, confirm_not_duplicate=confirmed()
    )
    location = f"{base_url()}/Patient/{patient['id']}/_history/{patient['version']}"
    return resource_response(patient, 201, Location=location)


def _existing(condition: str) -> dict[str, Any] | None:
    """The one patient a conditional create's criteria find; 412 when they find several."""
    query = search_query(MultiDict(parse_qsl(condition, keep_blank_values=True)))
    page = service.list_patients(current_database(), current_actor(), query.criteria)
    if page["total"] > 1:
        raise AmbiguousCondition(
            f"If-None-Exist matches {page['total']} patients: make the criteria more selective."
        )
    return page["items"][0] if page["items"] else None


@bp.get(f"/Patient/{ID}")
def read(patient_id: int) -> Response:
    patient = service.get_patient(current_database(), current_actor(), patient_id)
    return resource_response(with_replaces([patient])[0])


@bp.put(f"/Patient/{ID}")
def update(patient_id: int) -> Response:
    data = posted_patient()
    sent_id = (request.get_json(silent=True) or {}).get("id")
    if sent_id != str(patient_id):
        raise InvalidRequest([("Patient.id", f"must be {patient_id}, the id in the URL")])
    patient = service.replace_patient(
        current_database(),
        current_actor(),
        patient_id,
        data,
        if_match_version(),
        confirm_not_duplicate=confirmed(),
    )
    return resource_response(patient)


@bp.delete(f"/Patient/{ID}")
def delete(patient_id: int) -> Response:
    service.delete_patient(current_database(), current_actor(), patient_id, if_match_version())
    return Response(status=204)


@bp.get(f"/Patient/{ID}/_history")
def history(patient_id: int) -> Response:
    versions = service.patient_history(current_database(), current_actor(), patient_id)["items"]
    entries = [_history_entry(patient_id, version) for version in versions]
    bundle = {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}
    return fhir_response(bundle)


def _history_entry(patient_id: int, version: dict[str, Any]) -> dict[str, Any]:
    method, status = HISTORY_METHODS.get(version["action"], ("PUT", "200"))
    url = "Patient" if method == "POST" else f"Patient/{patient_id}"
    entry: dict[str, Any] = {
        "fullUrl": f"{base_url()}/Patient/{patient_id}",
        "request": {"method": method, "url": url},
        "response": {
            "status": status,
            "etag": weak_etag(version["version"]),
            "lastModified": version["changed_at"],
        },
    }
    if not version["values"]["deleted"]:
        entry["resource"] = _version_resource(patient_id, version)
    return entry


def _version_resource(patient_id: int, version: dict[str, Any]) -> dict[str, Any]:
    return patient_resource(
        version["values"], patient_id, version["version"], version["changed_at"]
    )


@bp.get(f"/Patient/{ID}/_history/<int(min=1, max={MAX_PATIENT_ID}):version_id>")
def vread(patient_id: int, version_id: int) -> Response:
    version = service.patient_version(current_database(), current_actor(), patient_id, version_id)
    if version["values"]["deleted"]:
        raise Deleted(f"Version {version_id} of patient {patient_id} is its deletion.")
    resource = _version_resource(patient_id, version)
    return fhir_response(resource, ETag=weak_etag(version_id))
