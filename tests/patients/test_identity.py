"""Patient identity: record numbers, identifiers, structured names and address, history."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from healthcare.auth.access import Actor
from healthcare.config import ConfigError, load_settings
from healthcare.db.database import Database
from healthcare.db.models import patient_identifiers, patient_versions
from healthcare.patients import service
from healthcare.patients.identifiers import is_valid_mrn, luhn_digit, mrn_for, phone_key, split_name
from tests.conftest import Account, audit_rows, bearer, new_patient


def test_every_patient_gets_a_distinct_record_number_with_a_check_digit(
    client: FlaskClient,
) -> None:
    first, second = new_patient(client), new_patient(client)
    assert first["mrn"] == mrn_for(first["id"], "MRN")
    assert first["mrn"] != second["mrn"]
    assert is_valid_mrn(first["mrn"])
    assert client.get(f"/patients/{first['id']}").json["mrn"] == first["mrn"]


def test_the_record_number_prefix_is_configured(
    make_app: Callable[..., OpenAPI], accounts: dict[str, Account]
) -> None:
    app = make_app(mrn_prefix="CLN")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = bearer(accounts["admin"].token)["Authorization"]
    assert new_patient(client)["mrn"].startswith("CLN")


@given(st.integers(1, 99_999_999), st.integers(0, 8), st.integers(1, 9))
def test_the_check_digit_catches_any_single_mistyped_digit(
    patient_id: int, position: int, change: int
) -> None:
    mrn = mrn_for(patient_id, "MRN")
    digits = list(mrn[3:])
    digits[position] = str((int(digits[position]) + change) % 10)
    assert is_valid_mrn(mrn)
    assert not is_valid_mrn("MRN" + "".join(digits))


def test_luhn_digit_matches_the_published_example() -> None:
    assert luhn_digit("7992739871") == 3


@pytest.mark.parametrize(
    ("name", "family", "given"),
    [("Asha Verma", "Verma", "Asha"), ("Jean Luc Picard", "Picard", "Jean Luc"),
     ("王小明", "王小明", None), ("Cher", "Cher", None)],
)  # fmt: skip
def test_a_client_sending_only_name_gets_family_and_given_names(
    client: FlaskClient, name: str, family: str, given: str | None
) -> None:
    patient = new_patient(client, name=name)
    assert (patient["family_name"], patient["given_names"]) == (family, given)
    assert split_name(name) == (family, given)


def test_family_and_given_names_make_the_display_name(client: FlaskClient) -> None:
    body = {"family_name": "Núñez", "given_names": "José María", "age": 40}
    patient = client.post("/patients", json=body).json
    assert patient["name"] == "José María Núñez"


def test_a_patient_needs_a_name_or_a_family_name(client: FlaskClient) -> None:
    response = client.post("/patients", json={"given_names": "Asha", "age": "x"})
    assert response.status_code == 422
    assert {e["field"] for e in response.json["errors"]} == {"name", "age"}


def test_patching_one_name_field_derives_the_others_again(client: FlaskClient) -> None:
    patient = new_patient(client, name="Asha Verma")
    married = client.patch(f"/patients/{patient['id']}", json={"family_name": "Rao"}).json
    assert (married["name"], married["given_names"]) == ("Asha Rao", "Asha")
    renamed = client.patch(f"/patients/{patient['id']}", json={"name": "Asha K Mehta"}).json
    assert (renamed["family_name"], renamed["given_names"]) == ("Mehta", "Asha K")


def test_address_and_identifiers_round_trip(client: FlaskClient) -> None:
    fields = {
        "address_lines": "12 Rose Street\nFlat 3",
        "city": "Leeds",
        "postal_code": "LS1 4AB",
        "country": "GB",
        "identifiers": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
        "email": "asha@example.org",
    }
    patient = new_patient(client, **fields)
    stored = client.get(f"/patients/{patient['id']}").json
    assert {k: stored[k] for k in fields} == fields


def test_an_identifier_belongs_to_one_patient_only(client: FlaskClient) -> None:
    nhs = [{"system": "nhs", "value": "9434765919"}]
    holder = new_patient(client, identifiers=nhs)
    other = new_patient(client, name="Someone Else")
    response = client.post("/patients", json={"name": "Third One", "age": 3, "identifiers": nhs})
    assert response.status_code == 409
    assert str(holder["id"]) in response.json["detail"]
    patched = client.patch(f"/patients/{other['id']}", json={"identifiers": nhs})
    assert patched.status_code == 409
    moved = client.patch(f"/patients/{holder['id']}", json={"identifiers": []})
    assert moved.json["identifiers"] == []
    assert client.patch(f"/patients/{other['id']}", json={"identifiers": nhs}).status_code == 200


def test_the_same_identifier_twice_is_invalid(client: FlaskClient) -> None:
    twice = [{"system": "nhs", "value": "1"}, {"system": "nhs", "value": "1"}]
    response = client.post("/patients", json={"name": "A B", "age": 3, "identifiers": twice})
    assert response.status_code == 422


def test_phone_keys_match_national_and_international_forms() -> None:
    assert phone_key("+44 20 7946 0958") == phone_key("020 7946-0958") == "079460958"
    assert phone_key(None) is None


def test_history_keeps_every_version_with_who_and_what_changed(
    client_as: Callable[[str], FlaskClient],
) -> None:
    clinician, viewer = client_as("clinician"), client_as("viewer")
    patient = new_patient(clinician, name="Asha Verma", date_of_birth="1990-01-02", age=None)
    pid = patient["id"]
    clinician.patch(f"/patients/{pid}", json={"date_of_birth": "1990-02-01"})
    clinician.delete(f"/patients/{pid}")
    clinician.post(f"/patients/{pid}/restore")
    listing = viewer.get(f"/patients/{pid}/history")
    assert listing.status_code == 200
    items = listing.json["items"]
    assert [(v["version"], v["action"]) for v in items] == [
        (4, "patient.restore"), (3, "patient.delete"), (2, "patient.update"),
        (1, "patient.create"),
    ]  # fmt: skip
    assert {v["changed_by"] for v in items} == {"clinician"}
    born = [c for c in items[2]["changes"] if c["field"] == "date_of_birth"]
    assert born == [{"field": "date_of_birth", "from": "1990-01-02", "to": "1990-02-01"}]
    assert items[1]["changes"] == [{"field": "deleted", "from": False, "to": True}]
    one = viewer.get(f"/patients/{pid}/history/1").json
    assert one["values"]["date_of_birth"] == "1990-01-02"
    assert one["values"]["mrn"] == patient["mrn"]


def test_reading_history_is_audited_and_authorised_like_a_read(
    client_as: Callable[[str], FlaskClient], db: Database, anonymous: FlaskClient
) -> None:
    pid = new_patient(client_as("clinician"))["id"]
    assert client_as("viewer").get(f"/patients/{pid}/history/1").status_code == 200
    assert anonymous.get(f"/patients/{pid}/history").status_code == 401
    reads = audit_rows(db, action="patient.read", patient_id=pid)
    assert [r["detail"] for r in reads] == ["history version 1"]
    assert reads[0]["username"] == "viewer"


def test_history_of_unknown_patients_and_versions_is_404(client: FlaskClient) -> None:
    pid = new_patient(client)["id"]
    assert client.get("/patients/999999/history").status_code == 404
    assert client.get(f"/patients/{pid}/history/2").status_code == 404


def test_a_deleted_patients_history_is_for_admins(
    client_as: Callable[[str], FlaskClient],
) -> None:
    clinician = client_as("clinician")
    pid = new_patient(clinician)["id"]
    clinician.delete(f"/patients/{pid}")
    assert clinician.get(f"/patients/{pid}/history").status_code == 404
    assert client_as("admin").get(f"/patients/{pid}/history").status_code == 200


def test_purging_a_patient_purges_its_history_and_identifiers(
    client: FlaskClient, db: Database
) -> None:
    nhs = [{"system": "nhs", "value": "42"}]
    pid = new_patient(client, identifiers=nhs)["id"]
    client.delete(f"/patients/{pid}")
    service.purge_patient(db, Actor.operator(), pid)
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(patient_versions)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(patient_identifiers)).scalar() == 0
    assert new_patient(client, identifiers=nhs)["identifiers"] == nhs


@pytest.mark.parametrize("prefix", ["mrn", "TOOLONGPREFIX", "MR1"])
def test_a_record_number_prefix_must_be_a_few_capital_letters(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    monkeypatch.setenv("HEALTHCARE_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("HEALTHCARE_MRN_PREFIX", prefix)
    with pytest.raises(ConfigError, match="HEALTHCARE_MRN_PREFIX"):
        load_settings()
