"""/audit and /patients/{id}/access-log: the audit trail, read-only, for admins."""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from healthcare.api.problems import Problem
from healthcare.api.responses import PROBLEM_RESPONSES, json_response
from healthcare.audit.queries import AuditPage, AuditPageQuery, AuditQuery, find_events
from healthcare.auth.web import current_actor
from healthcare.db.database import current_database
from healthcare.patients.schemas import PatientPath

api = APIBlueprint(
    "audit_api",
    __name__,
    abp_tags=[Tag(name="audit", description="Who read or changed what (admins)")],
    abp_responses={**PROBLEM_RESPONSES, 401: Problem, 403: Problem},
    abp_security=[{"bearer": []}],
)


@api.get("/audit", summary="Search the audit trail, newest first", responses={200: AuditPage})
def audit(query: AuditQuery) -> Response:
    return json_response(find_events(current_database(), current_actor(), query))


@api.get(
    "/patients/<int:patient_id>/access-log",
    summary="Everyone who read or changed one patient, newest first",
    responses={200: AuditPage},
)
def access_log(path: PatientPath, query: AuditPageQuery) -> Response:
    page = find_events(current_database(), current_actor(), query, patient_id=path.patient_id)
    return json_response(page)
