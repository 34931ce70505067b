"""The identity pages: record numbers and demographics shown, the duplicate warning with its
"create anyway", and a patient's history as a readable difference."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from tests.conftest import new_patient
from tests.ui.test_pages import Browser, as_role, clinician  # noqa: F401 - fixtures

ASHA = {"name": "Asha Verma", "date_of_birth": "1990-03-04", "phone": "020 7946 0958"}


def test_the_record_shows_number_names_address_and_identifiers(
    clinician: Browser,  # noqa: F811
    client: FlaskClient,
) -> None:
    patient = new_patient(
        client,
        **ASHA,
        age=None,
        city="Leeds",
        identifiers=[{"system": "nhs", "value": "9434765919"}],
    )
    page = clinician.text(f"/ui/patients/{patient['id']}")
    assert patient["mrn"] in page
    assert "<dt>Family name</dt><dd>Verma</dd>" in page
    assert "Leeds" in page
    assert "nhs: 9434765919" in page
    assert f'href="/ui/patients/{patient["id"]}/history"' in page


def test_adding_a_likely_duplicate_warns_with_links_and_creates_only_when_told(
    clinician: Browser,  # noqa: F811
    client: FlaskClient,
) -> None:
    first = new_patient(client, **ASHA, age=None)
    form = {"family_name": "Vrema", "given_names": "Asha", "date_of_birth": "1990-03-04"}
    warned = clinician.post("/ui/patients/new", **form)
    assert warned.status_code == 409
    page = warned.get_data(as_text=True)
    assert 'id="duplicates"' in page
    assert f'href="/ui/patients/{first["id"]}"' in page
    assert first["mrn"] in page
    assert 'value="Vrema"' in page  # what was typed is kept
    assert client.get("/patients?family=vrema").json["total"] == 0
    created = clinician.post("/ui/patients/new", **form, confirm_not_duplicate="yes")
    assert created.status_code == 303
    assert client.get("/patients?family=vrema").json["total"] == 1


def test_the_history_page_shows_what_changed_by_whom_and_when(
    clinician: Browser,  # noqa: F811
) -> None:
    added = clinician.post("/ui/patients/new", name="Asha Verma", age="34", city="Leeds")
    patient_path = added.headers["Location"]
    edit = clinician.text(f"{patient_path}/edit")
    assert 'value="Verma"' in edit
    saved = clinician.post(
        f"{patient_path}/edit", version="1", name="Asha Verma", age="34", city="York"
    )
    assert saved.status_code == 303
    page = clinician.text(f"{patient_path}/history")
    assert "Version 2: changed" in page
    assert "Version 1: added" in page
    assert '<th scope="row">City</th><td><del>Leeds</del></td><td><ins>York</ins></td>' in page
    assert "<strong>clinician</strong>" in page


def test_merging_a_duplicate_field_by_field(
    clinician: Browser,  # noqa: F811
    client: FlaskClient,
) -> None:
    survivor = new_patient(client, **ASHA, age=None)
    body = {**ASHA, "name": "Asha Vrema", "phone": "555 0199", "email": "asha@example.org"}
    duplicate = client.post("/patients?confirm_not_duplicate=true", json=body).json
    page = clinician.text(f"/ui/patients/{survivor['id']}/merge?source={duplicate['mrn']}")
    assert 'name="keep-phone" value="source"' in page
    assert "asha@example.org" in page
    unknown = clinician.get(f"/ui/patients/{survivor['id']}/merge?source=MRN999")
    assert unknown.status_code == 404
    merged = clinician.post(
        f"/ui/patients/{survivor['id']}/merge",
        source_id=str(duplicate["id"]),
        source_version="1",
        target_version="1",
        **{"keep-phone": "source", "keep-email": "source", "keep-name": "target"},
    )
    assert merged.status_code == 303
    kept = client.get(f"/patients/{survivor['id']}").json
    assert (kept["name"], kept["phone"], kept["email"]) == (
        "Asha Verma", "555 0199", "asha@example.org",
    )  # fmt: skip
    closed = clinician.text(f"/ui/patients/{duplicate['id']}")
    assert f'href="/ui/patients/{survivor["id"]}">record {survivor["id"]}</a>' in closed
    stale = clinician.post(
        f"/ui/patients/{survivor['id']}/merge",
        source_id=str(duplicate["id"]),
        source_version="1",
        target_version="1",
    )
    assert stale.status_code == 303
    assert client.get(f"/patients/{survivor['id']}").json["version"] == kept["version"]


def test_an_admin_undoes_a_merge_from_the_closed_record(
    as_role: Callable[[str], Browser],  # noqa: F811
    clinician: Browser,  # noqa: F811
    client: FlaskClient,
) -> None:
    survivor = new_patient(client, **ASHA, age=None)
    body = {**ASHA, "name": "Asha Vrema", "phone": "555 0199"}
    duplicate = client.post("/patients?confirm_not_duplicate=true", json=body).json
    merge = {"source_id": duplicate["id"], "source_version": 1, "target_version": 1,
             "take_from_source": ["phone"]}  # fmt: skip
    assert client.post(f"/patients/{survivor['id']}/merge", json=merge).status_code == 200
    closed = f"/ui/patients/{duplicate['id']}"
    admin = as_role("admin")
    assert "Undo this merge" not in clinician.text(closed)
    assert clinician.post(f"{closed}/unmerge").status_code == 403
    assert client.get(f"/patients/{duplicate['id']}").json["merged_into"] == survivor["id"]
    assert "Undo this merge" in admin.text(closed)
    undone = admin.post(f"{closed}/unmerge")
    assert undone.status_code == 303
    assert "The merge was undone" in admin.text(closed)
    assert client.get(f"/patients/{duplicate['id']}").json["merged_into"] is None
    assert client.get(f"/patients/{survivor['id']}").json["phone"] == ASHA["phone"]
    assert "Version 3: merge undone" in admin.text(f"/ui/patients/{survivor['id']}/history")
    again = admin.post(f"{closed}/unmerge")
    assert again.status_code == 303
    assert f"Nothing was undone: Patient {duplicate['id']} is not merged." in admin.text(closed)
