"""/patients: list, read, create, replace, merge-patch, soft delete, restore, history, matches,
merge and its undo."""

from __future__ import annotations

from flask import Response, request, url_for
from flask_openapi3 import APIBlueprint, Tag
from werkzeug.exceptions import BadRequest

from healthcare.api.problems import Problem, problem
from healthcare.api.responses import PROBLEM_RESPONSES, etag, expected_version, json_response
from healthcare.auth.web import current_actor
from healthcare.db.database import current_database
from healthcare.patients import service
from healthcare.patients.schemas import (
    DeletedPatientPage,
    DuplicateCandidate,
    DuplicateCandidates,
    MatchQuery,
    MergeRequest,
    PageQuery,
    Patient,
    PatientHistory,
    PatientIn,
    PatientPage,
    PatientPatch,
    PatientPath,
    PatientQuery,
    PatientVersion,
    VersionPath,
    WriteOptions,
)

api = APIBlueprint(
    "patients_api",
    __name__,
    url_prefix="/patients",
    abp_tags=[Tag(name="patients", description="Patient records")],
    abp_responses={**PROBLEM_RESPONSES, 401: Problem, 403: Problem},
    abp_security=[{"bearer": []}],
)
JSON_TYPES = {"application/json"}
MERGE_PATCH_TYPES = {"application/json", "application/merge-patch+json"}
BODY_TYPES = {
    "patients_api.create": JSON_TYPES,
    "patients_api.replace": JSON_TYPES,
    "patients_api.patch": MERGE_PATCH_TYPES,
    "patients_api.matches": JSON_TYPES,
    "patients_api.merge": JSON_TYPES,
}


class DuplicateProblem(Problem):
    """409 for a likely duplicate: the candidates, to show before sending it again with
    ``confirm_not_duplicate=true``."""

    candidates: list[DuplicateCandidate]


CHANGES = {409: DuplicateProblem, 412: Problem, 422: Problem}


@api.before_request
def _require_json_body() -> Response | None:
    """415 for a body that is not JSON and 400 for malformed JSON, before any validation."""
    accepted = BODY_TYPES.get(request.endpoint or "")
    if accepted is None:
        return None
    if request.mimetype not in accepted:
        return problem(
            415,
            "Unsupported media type",
            f"Send the body as {' or '.join(sorted(accepted))}.",
        )
    try:
        request.get_json()  # JSON null parses: validation refuses it (422) like any non-object
    except BadRequest:
        return problem(400, "Malformed JSON", "The request body is not valid JSON.")
    return None


def patient_response(patient: dict, status: int = 200, **headers: str) -> Response:
    if patient.get("merged_into"):  # a merged record points at its survivor
        headers["Link"] = f'</patients/{patient["merged_into"]}>; rel="replaced-by"'
    return json_response(patient, status, ETag=etag(patient["version"]), **headers)


@api.get("", summary="List and search patients", responses={200: PatientPage, 422: Problem})
def list_patients(query: PatientQuery) -> Response:
    return json_response(service.list_patients(current_database(), current_actor(), query))


@api.get(
    "/deleted",
    summary="List soft-deleted patients",
    responses={200: DeletedPatientPage, 422: Problem},
)
def list_deleted(query: PageQuery) -> Response:
    return json_response(service.list_deleted(current_database(), current_actor(), query))


@api.post(
    "",
    summary="Create a patient",
    description="A patient who looks like patients on record (name, date of birth, phone, "
    "email, identifiers) is refused with 409 naming them, unless confirm_not_duplicate=true.",
    responses={201: Patient, 409: DuplicateProblem, 422: Problem},
)
def create(query: WriteOptions, body: PatientIn) -> Response:
    patient = service.create_patient(
        current_database(),
        current_actor(),
        body,
        confirm_not_duplicate=query.confirm_not_duplicate,
    )
    location = url_for("patients_api.read", patient_id=patient["id"])
    return patient_response(patient, 201, Location=location)


@api.get("/<int:patient_id>", summary="Read a patient", responses={200: Patient})
def read(path: PatientPath) -> Response:
    return patient_response(
        service.get_patient(current_database(), current_actor(), path.patient_id)
    )


@api.put(
    "/<int:patient_id>",
    summary="Replace a patient's writable fields",
    description="Send If-Match with the ETag you read to be refused (412) a stale write. "
    "A change to the name, birth date, phone, email or identifiers that makes the patient look "
    "like another is refused with 409 unless confirm_not_duplicate=true.",
    responses={200: Patient, **CHANGES},
)
def replace(path: PatientPath, query: WriteOptions, body: PatientIn) -> Response:
    patient = service.replace_patient(
        current_database(),
        current_actor(),
        path.patient_id,
        body,
        expected_version(),
        confirm_not_duplicate=query.confirm_not_duplicate,
    )
    return patient_response(patient)


@api.patch(
    "/<int:patient_id>",
    summary="Change some fields (JSON merge patch, RFC 7396)",
    description="Fields present replace the stored ones; null removes an optional field. "
    "Content-Type application/merge-patch+json or application/json. Honours If-Match.",
    responses={200: Patient, **CHANGES},
)
def patch(path: PatientPath, query: WriteOptions, body: PatientPatch) -> Response:
    patient = service.patch_patient(
        current_database(),
        current_actor(),
        path.patient_id,
        body,
        expected_version(),
        confirm_not_duplicate=query.confirm_not_duplicate,
    )
    return patient_response(patient)


@api.delete(
    "/<int:patient_id>",
    summary="Soft-delete a patient (restorable)",
    responses={204: None, 412: Problem},
)
def remove(path: PatientPath) -> Response:
    service.delete_patient(current_database(), current_actor(), path.patient_id, expected_version())
    return Response(status=204)


@api.post(
    "/<int:patient_id>/restore",
    summary="Restore a soft-deleted patient",
    description="An admin may restore any deleted patient; a clinician one they deleted "
    "themselves within 24 hours. Honours If-Match (412 when stale).",
    responses={200: Patient, 409: Problem, 412: Problem},
)
def restore(path: PatientPath) -> Response:
    patient = service.restore_patient(
        current_database(), current_actor(), path.patient_id, expected_version()
    )
    return patient_response(patient)


@api.get(
    "/<int:patient_id>/history",
    summary="Every version of a patient, newest first, with what each changed",
    description="Authorised and audited as a read of the patient.",
    responses={200: PatientHistory},
)
def history(path: PatientPath) -> Response:
    return json_response(
        service.patient_history(current_database(), current_actor(), path.patient_id)
    )


@api.get(
    "/<int:patient_id>/history/<int:version>",
    summary="One version of a patient",
    responses={200: PatientVersion},
)
def version(path: VersionPath) -> Response:
    return json_response(
        service.patient_version(current_database(), current_actor(), path.patient_id, path.version)
    )


@api.post(
    "/matches",
    summary="Who might this be? Patients on record likely to be the person described",
    description="Fuzzy and phonetic name matching, date of birth (with one-slip tolerance), "
    "phone, email and identifiers; audited as patient.match.",
    responses={200: DuplicateCandidates, 422: Problem},
)
def matches(body: MatchQuery) -> Response:
    found = service.find_matches(current_database(), current_actor(), body.model_dump())
    return json_response(found)


@api.post(
    "/<int:patient_id>/merge",
    summary="Merge another patient into this one, choosing field by field",
    description="This record survives. It takes the source's value for each field named in "
    "take_from_source and the identifiers of both; the source is closed and reads as "
    "merged_into this one (with a Link rel=replaced-by). Both versions must be current "
    "(412 otherwise). Audited as patient.merge.",
    responses={200: Patient, 409: Problem, 412: Problem, 422: Problem},
)
def merge(path: PatientPath, body: MergeRequest) -> Response:
    return patient_response(
        service.merge_patients(current_database(), current_actor(), path.patient_id, body)
    )


@api.post(
    "/<int:patient_id>/unmerge",
    summary="Undo the merge of this record (admins)",
    description="Both records go back to their values before the merge, if the survivor has "
    "not changed since (409 otherwise). Audited as patient.unmerge.",
    responses={200: Patient, 409: Problem},
)
def unmerge(path: PatientPath) -> Response:
    return patient_response(
        service.undo_merge(current_database(), current_actor(), path.patient_id)
    )
