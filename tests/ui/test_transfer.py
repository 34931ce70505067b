"""The admin import and export page: downloads, uploads larger than the API's body limit,
reports by row, refusals for other roles."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from healthcare.config import Settings
from healthcare.db.database import Database
from tests.auth.test_sessions import csrf_from
from tests.conftest import audit_rows
from tests.fhir.conftest import confirmed_patient
from tests.ui.test_pages import Browser, as_role  # noqa: F401 (the fixture)

HEADER = "name,age,phone\n"
API_LIMIT = 16 * 1024


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """An API body limit far below the file the tests upload."""
    return settings.model_copy(update={"max_body_bytes": API_LIMIT})


def upload(admin: Browser, text: str, name: str = "patients.csv", **options: str) -> object:
    form = {
        "csrf_token": csrf_from(admin.client),
        "file": (io.BytesIO(text.encode()), name),
        **options,
    }
    return admin.client.post("/ui/admin/import", data=form, content_type="multipart/form-data")


def test_the_page_is_for_admins_only(as_role: Callable[[str], Browser]) -> None:  # noqa: F811
    assert "Import and export" in as_role("admin").text("/ui/admin/transfer")
    for role in ("viewer", "clinician"):
        browser = as_role(role)
        assert browser.get("/ui/admin/transfer").status_code == 403
        assert browser.get("/ui/admin/export.csv").status_code == 403
        assert "Import and export" not in browser.text("/ui/patients")


def test_a_download_is_the_export_and_audited(
    as_role: Callable[[str], Browser],  # noqa: F811
    client: FlaskClient,
    db: Database,
) -> None:
    patient = confirmed_patient(client, disease="=HYPERLINK(1)")
    response = as_role("admin").get("/ui/admin/export.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="patients.csv"'
    assert "'=HYPERLINK(1)" in response.get_data(as_text=True)
    [exported] = audit_rows(db, action="patient.export")
    assert exported["patient_id"] == patient["id"]
    assert as_role("admin").get("/ui/admin/export.xlsx").status_code == 404


def test_a_dry_run_upload_reports_problems_by_row(
    as_role: Callable[[str], Browser],  # noqa: F811
    client: FlaskClient,
) -> None:
    admin = as_role("admin")
    response = upload(admin, HEADER + "Asha Verma,34,\n,,\n", dry_run="on")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Checked (dry run)" in page
    assert "Would create 1 of 2 patients." in page
    assert "Row 3: name: Field required" in page
    assert client.get("/patients").json["total"] == 0


def test_an_upload_larger_than_the_api_body_limit_is_imported(
    as_role: Callable[[str], Browser],  # noqa: F811
    client: FlaskClient,
) -> None:
    rows = "".join(f"Person{i} Test{i},{20 + i % 50},\n" for i in range(3_000))
    text = HEADER + rows
    assert len(text) > 3 * API_LIMIT
    small_api = client.post("/patients", data="x" * (len(text)), content_type="application/json")
    assert small_api.status_code == 413
    response = upload(as_role("admin"), text, skip_invalid="on")
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert "Created 3000 of 3000 patients." in response.get_data(as_text=True)
    assert client.get("/patients").json["total"] == 3000


def test_an_invalid_file_is_refused_with_nothing_written(
    as_role: Callable[[str], Browser],  # noqa: F811
    client: FlaskClient,
) -> None:
    admin = as_role("admin")
    assert upload(admin, "shoe_size\n9\n").status_code == 422
    no_file = admin.post("/ui/admin/import", dry_run="on")
    assert no_file.status_code == 422
    assert "Choose a file to import." in no_file.get_data(as_text=True)
    response = upload(admin, HEADER + "Asha Verma,34,\n,,\n")
    assert response.status_code == 422
    assert "Nothing imported" in response.get_data(as_text=True)
    assert client.get("/patients").json["total"] == 0
