"""Patient pages under /ui/patients."""

from __future__ import annotations

from flask import render_template

from healthcare.auth.web import current_actor
from healthcare.db.database import current_database
from healthcare.patients import service
from healthcare.patients.schemas import PatientQuery
from healthcare.ui.views import bp


@bp.get("/ui/patients")
def patient_list() -> str:
    page = service.list_patients(current_database(), current_actor(), PatientQuery())
    return render_template("patients/list.html", page=page)
