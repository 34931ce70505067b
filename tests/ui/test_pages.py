"""The browser pages through the test client: every patient operation, the admin pages, the
error pages, and that each page keeps to the role and the CSRF rule."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

from healthcare.db.database import Database
from tests.auth.test_sessions import csrf_from, sign_in
from tests.conftest import Account, audit_rows, new_patient


class Browser:
    """A signed-in browser: pages as text, forms posted with the page's CSRF token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, path: str) -> Any:
        return self.client.get(path)

    def text(self, path: str) -> str:
        response = self.client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response.get_data(as_text=True)

    def post(self, path: str, **form: Any) -> Any:
        return self.client.post(path, data={"csrf_token": csrf_from(self.client), **form})


@pytest.fixture
def as_role(app: OpenAPI, accounts: dict[str, Account]) -> Callable[[str], Browser]:
    def make(role: str) -> Browser:
        client = app.test_client()
        assert sign_in(client, role).status_code == 303
        return Browser(client)

    return make


@pytest.fixture
def clinician(as_role: Callable[[str], Browser]) -> Browser:
    return as_role("clinician")


def field_error(page: str, name: str) -> str:
    match = re.search(rf'id="f-{name}-error">([^<]*)<', page)
    assert match, f"no error slot for {name}"
    return match.group(1)


def test_an_empty_list_says_what_to_do_next(clinician: Browser, as_role: Callable) -> None:
    page = clinician.text("/ui/patients")
    assert "No patients yet" in page
    assert "Add the first patient" in page
    viewer_page = as_role("viewer").text("/ui/patients")
    assert "No patients yet" in viewer_page
    assert "Add the first patient" not in viewer_page


def test_adding_a_patient_shows_errors_by_field_and_keeps_the_values(
    clinician: Browser, db: Database
) -> None:
    bad = clinician.post("/ui/patients/new", name="", age="two hundred", email="not-an-email",
                         disease="Asthma", notes="Keep me")  # fmt: skip
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert field_error(page, "name") == "Enter the patient&#39;s name."
    assert "whole number" in field_error(page, "age")
    assert field_error(page, "email")
    assert field_error(page, "disease") == ""
    assert 'value="Asthma"' in page
    assert "Keep me</textarea>" in page
    assert 'aria-invalid="true"' in page
    assert audit_rows(db, action="patient.create") == []
    good = clinician.post("/ui/patients/new", name="Asha Verma", age="34", disease="Asthma")
    assert good.status_code == 303
    detail = clinician.text(good.location)
    assert "Asha Verma was added." in detail
    assert "Last changed by <strong>clinician</strong>" in detail


def test_age_and_birth_date_rules_are_the_apis(clinician: Browser) -> None:
    page = clinician.post("/ui/patients/new", name="A B", age="200").get_data(as_text=True)
    assert "0 to 150" in field_error(page, "age")
    future = clinician.post("/ui/patients/new", name="A B", date_of_birth="2999-01-01")
    assert "future" in field_error(future.get_data(as_text=True), "date_of_birth")
    both = clinician.post("/ui/patients/new", name="A B", age="3", date_of_birth="1990-01-01")
    assert "Does not match" in field_error(both.get_data(as_text=True), "age")


def test_search_filter_sort_and_paging(clinician: Browser, client: FlaskClient) -> None:
    for i in range(30):
        new_patient(
            client, name=f"Person {i:02d}", age=20 + i, gender="female" if i % 2 else "male"
        )
    new_patient(client, name="Zoë Ångström", age=36, disease="Asthma")
    page = clinician.text("/ui/patients")
    assert "Showing 1–25 of 31 patients" in page
    assert "Next →" in page
    second = clinician.text("/ui/patients?offset=25")
    assert "Showing 26–31 of 31 patients" in second
    assert "← Previous" in second
    found = clinician.text("/ui/patients?q=zoe")
    assert "Zoë Ångström" in found
    assert "Person 01" not in found
    assert "Showing 1–1 of 1 patients" in found
    by_age = clinician.text("/ui/patients?sort=-age&gender=female")
    assert by_age.index("Person 29") < by_age.index("Person 27")
    assert 'aria-sort="descending"' in by_age
    none = clinician.text("/ui/patients?q=nobody")
    assert "No patients match this search" in none
    odd = clinician.text("/ui/patients?gender=alien")
    assert "could not be used" in odd


def test_editing_and_the_concurrent_edit_message(clinician: Browser, client: FlaskClient) -> None:
    patient = new_patient(client, name="Edit Me", age=40)
    form = clinician.text(f"/ui/patients/{patient['id']}/edit")
    assert 'name="version" value="1"' in form
    client.patch(f"/patients/{patient['id']}", json={"age": 41})  # someone else, meanwhile
    stale = clinician.post(f"/ui/patients/{patient['id']}/edit", name="Edited Name", age="40",
                           version="1")  # fmt: skip
    assert stale.status_code == 409
    page = stale.get_data(as_text=True)
    assert "Someone else changed this record" in page
    assert "Load the latest version" in page
    assert 'value="Edited Name"' in page  # what they typed is still there
    assert client.get(f"/patients/{patient['id']}").json["name"] == "Edit Me"
    fresh = clinician.post(f"/ui/patients/{patient['id']}/edit", name="Edited Name", age="41",
                           version="2")  # fmt: skip
    assert fresh.status_code == 303
    assert client.get(f"/patients/{patient['id']}").json["name"] == "Edited Name"


def test_delete_asks_first_and_offers_undo(clinician: Browser, client: FlaskClient) -> None:
    patient = new_patient(client, name="Short Stay", age=50)
    confirm = clinician.text(f"/ui/patients/{patient['id']}/delete")
    assert "Delete Short Stay?" in confirm
    assert client.get(f"/patients/{patient['id']}").status_code == 200
    deleted = clinician.post(f"/ui/patients/{patient['id']}/delete", version="1", name="Short Stay")
    assert deleted.status_code == 303
    listing = clinician.text(deleted.location)
    assert "Short Stay was deleted." in listing
    assert f'action="/ui/patients/{patient["id"]}/restore"' in listing
    assert client.get(f"/patients/{patient['id']}").status_code == 404
    undone = clinician.post(f"/ui/patients/{patient['id']}/restore")
    assert undone.status_code == 303
    assert "Short Stay was restored." in clinician.text(undone.location)


def test_viewers_see_no_change_buttons_and_are_refused_changes(
    as_role: Callable[[str], Browser], client: FlaskClient
) -> None:
    patient = new_patient(client)
    viewer = as_role("viewer")
    detail = viewer.text(f"/ui/patients/{patient['id']}")
    assert "Edit</a>" not in detail
    assert "Access log" not in detail
    for path in ("/ui/patients/new", f"/ui/patients/{patient['id']}/edit"):
        refused = viewer.get(path)
        assert refused.status_code == 403
        assert "Not allowed" in refused.get_data(as_text=True)
    assert viewer.post(f"/ui/patients/{patient['id']}/delete", version="1").status_code == 403
    for path in ("/ui/patients/deleted", "/ui/admin/users", "/ui/admin/tokens", "/ui/admin/audit"):
        assert viewer.get(path).status_code == 403, path


def test_admins_see_the_access_log_and_deleted_patients(
    as_role: Callable[[str], Browser], client: FlaskClient
) -> None:
    admin = as_role("admin")
    patient = new_patient(client, name="Logged Patient")
    detail = admin.text(f"/ui/patients/{patient['id']}")
    assert "Access log" in detail
    assert "patient.create" in detail
    client.delete(f"/patients/{patient['id']}")
    deleted = admin.text("/ui/patients/deleted")
    assert "Logged Patient" in deleted
    restored = admin.post(f"/ui/patients/{patient['id']}/restore")
    assert restored.status_code == 303
    assert "No deleted patients" in admin.text("/ui/patients/deleted")


def test_admin_manages_users(as_role: Callable[[str], Browser], app: OpenAPI) -> None:
    admin = as_role("admin")
    weak = admin.post("/ui/admin/users", username="newbie", role="viewer", password="short")
    assert weak.status_code == 422
    assert "12" in field_error(weak.get_data(as_text=True), "password")
    made = admin.post("/ui/admin/users", username="newbie", role="viewer",
                      password="silver kettle whistles 9")  # fmt: skip
    assert made.status_code == 303
    assert "User newbie was created as viewer." in admin.text(made.location)
    again = admin.post("/ui/admin/users", username="newbie", role="viewer",
                       password="silver kettle whistles 9")  # fmt: skip
    assert again.status_code == 409
    promoted = admin.post("/ui/admin/users/newbie/role", role="clinician")
    assert "newbie is now clinician." in admin.text(promoted.location)
    newbie = app.test_client()
    assert sign_in(newbie, "newbie", "silver kettle whistles 9").status_code == 303
    admin.post("/ui/admin/users/newbie/disable")
    assert newbie.get("/ui/patients").status_code == 302
    last = admin.post("/ui/admin/users/admin/disable")
    assert "your own account" in admin.text(last.location)


def test_admin_creates_and_revokes_tokens(as_role: Callable[[str], Browser], app: OpenAPI) -> None:
    admin = as_role("admin")
    created = admin.post("/ui/admin/tokens", username="viewer", label="lab import",
                         expires_in_days="30")  # fmt: skip
    assert created.status_code == 201
    page = created.get_data(as_text=True)
    token = re.search(r'class="token-value" value="(hct_[^"]+)"', page).group(1)
    assert "shown this once" in page
    assert token not in admin.text("/ui/admin/tokens")
    api = app.test_client()
    assert api.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    token_id = re.search(r"<tr><td>(\d+)</td><td>viewer</td><td>lab import</td>",
                         admin.text("/ui/admin/tokens")).group(1)  # fmt: skip
    admin.post(f"/ui/admin/tokens/{token_id}/revoke")
    assert api.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    bad = admin.post("/ui/admin/tokens", username="viewer", label="", expires_in_days="0")
    assert bad.status_code == 422


def test_admin_reads_the_audit_trail_with_filters(
    as_role: Callable[[str], Browser], client: FlaskClient
) -> None:
    admin = as_role("admin")
    patient = new_patient(client, name="Audited")
    page = admin.text(f"/ui/admin/audit?patient_id={patient['id']}&action=patient.*")
    assert "patient.create" in page
    assert "login.success" not in page
    everything = admin.text("/ui/admin/audit?username=admin")
    assert "login.success" in everything
    bad = admin.text("/ui/admin/audit?since=yesterday")
    assert "could not be used" in bad


def test_changing_my_password(clinician: Browser, app: OpenAPI) -> None:
    mismatch = clinician.post("/ui/account/password", current_password="x",
                              new_password="a b c d e f g h", confirm_password="other")  # fmt: skip
    assert mismatch.status_code == 422
    assert "not the same" in mismatch.get_data(as_text=True)
    from tests.conftest import TEST_PASSWORD

    done = clinician.post("/ui/account/password", current_password=TEST_PASSWORD,
                          new_password="copper lantern meadow 4",
                          confirm_password="copper lantern meadow 4")  # fmt: skip
    assert done.status_code == 303
    assert sign_in(app.test_client(), "clinician", "copper lantern meadow 4").status_code == 303


def test_error_pages_share_the_look(clinician: Browser, make_app: Callable[..., OpenAPI],
                                    accounts: dict[str, Account]) -> None:  # fmt: skip
    missing = clinician.get("/ui/patients/424242")
    assert missing.status_code == 404
    assert "Not found" in missing.get_data(as_text=True)
    assert "Clinic records" in missing.get_data(as_text=True)
    nowhere = clinician.get("/ui/no-such-page")
    assert nowhere.status_code == 404
    assert "<html" in nowhere.get_data(as_text=True)
    app = make_app()

    @app.get("/ui/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    browser = app.test_client()
    sign_in(browser, "viewer")
    crashed = browser.get("/ui/boom", headers={"X-Request-ID": "req-ui-500"})
    assert crashed.status_code == 500
    page = crashed.get_data(as_text=True)
    assert crashed.headers["X-Request-ID"] in page
    assert "kaboom" not in page


def test_pages_carry_no_inline_script_or_style(clinician: Browser, client: FlaskClient) -> None:
    patient = new_patient(client)
    for path in ("/ui/patients", f"/ui/patients/{patient['id']}", "/ui/patients/new",
                 f"/ui/patients/{patient['id']}/edit", "/ui/account/password"):  # fmt: skip
        page = clinician.text(path)
        assert "<script>" not in page
        assert re.search(r"<script(?![^>]*\bsrc=)", page) is None, path
        assert " style=" not in page, path
        assert "<style" not in page, path
        assert re.search(r" on[a-z]+=", page) is None, path


def test_every_form_that_changes_something_carries_the_csrf_token(
    as_role: Callable[[str], Browser], client: FlaskClient
) -> None:
    admin = as_role("admin")
    patient = new_patient(client)
    pid = patient["id"]
    # Each page's own forms that change something, besides "Sign out" on every page.
    own_forms = {
        "/ui/patients": 0, f"/ui/patients/{pid}": 0, "/ui/patients/new": 1,
        f"/ui/patients/{pid}/edit": 1, f"/ui/patients/{pid}/delete": 1,
        "/ui/admin/users": 1, "/ui/admin/tokens": 1, "/ui/account/password": 1,
    }  # fmt: skip
    for path, own in own_forms.items():
        page = admin.text(path)
        forms = re.findall(r"<form[^>]*method=[\"']?post.*?</form>", page, re.S | re.I)
        assert len(forms) >= own + 1, (path, len(forms))
        assert any('id="logout-form"' in form for form in forms), path
        for form in forms:
            assert 'name="csrf_token"' in form, (path, form[:80])


def test_a_page_form_without_the_token_is_refused(clinician: Browser) -> None:
    response = clinician.client.post("/ui/patients/new", data={"name": "No Token", "age": "3"})
    assert response.status_code == 403


def test_a_malformed_query_on_a_page_answers_with_a_page(clinician: Browser) -> None:
    response = clinician.get("/ui/patients?q=an&q=bo")
    assert response.status_code == 422
    assert response.mimetype == "text/html"
    assert "Check these fields: q." in response.get_data(as_text=True)
