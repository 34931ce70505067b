"""Likely duplicates: the scoring, the refusal on create and edit, "who might this be?"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from flask.testing import FlaskClient

from healthcare.db.database import Database
from healthcare.patients.matching import THRESHOLD, Demographics, name_key, score
from tests.conftest import audit_rows, new_patient

ASHA = Demographics("Verma", "Asha", date(1990, 3, 4), "079460958", "asha@example.org")


@pytest.mark.parametrize(
    "other",
    [
        Demographics("Vrema", "Asha", date(1990, 3, 4)),  # typo, same birth date
        Demographics("Asha", "Verma", date(1990, 3, 4)),  # transposed
        Demographics("Verma", "Asha", None, "079460958"),  # no birth date, same phone
        Demographics("Verma", "Asha", date(1990, 4, 3)),  # day and month swapped
        Demographics("Verma", "Asha", date(1991, 3, 4), email="asha@example.org"),
    ],
)
def test_the_same_person_entered_differently_is_likely(other: Demographics) -> None:
    assert score(ASHA, other) >= THRESHOLD
    assert score(other, ASHA) >= THRESHOLD


def test_nicknames_count_as_the_same_given_name() -> None:
    william = Demographics("Jones", "William", date(1950, 1, 1))
    assert score(william, Demographics("Jones", "Bill", date(1950, 1, 1))) >= THRESHOLD


@pytest.mark.parametrize(
    "other",
    [
        Demographics("Verma", "Asha", date(1971, 8, 19)),  # namesake, another birth date
        Demographics("Okafor", "Ngozi", date(1990, 3, 4)),  # same birthday, another name
        Demographics("Verma", "Asha"),  # a name alone is not enough
    ],
)
def test_other_people_are_not_likely(other: Demographics) -> None:
    assert score(ASHA, other) < THRESHOLD


def test_the_phonetic_block_holds_transposed_names_and_skips_other_scripts() -> None:
    assert name_key("Verma", "Asha Rani") == name_key("Asha", "Verma")
    assert name_key("王小明", None) is None


ASHA_BODY = {"name": "Asha Verma", "date_of_birth": "1990-03-04", "phone": "020 7946 0958"}


def test_creating_a_likely_duplicate_is_refused_with_the_candidates(
    client: FlaskClient, db: Database
) -> None:
    first = new_patient(client, **ASHA_BODY, age=None)
    again = {"family_name": "Vrema", "given_names": "Asha", "date_of_birth": "1990-03-04"}
    response = client.post("/patients", json=again)
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    [candidate] = response.json["candidates"]
    assert candidate["id"] == first["id"]
    assert candidate["mrn"] == first["mrn"]
    assert candidate["href"] == f"/patients/{first['id']}"
    assert candidate["reasons"] == ["name", "date of birth"]
    assert first["mrn"] in response.json["detail"]
    refused = audit_rows(db, action="patient.create", outcome="possible_duplicate")
    assert len(refused) == 1


def test_a_confirmed_new_patient_is_created_and_the_confirmation_audited(
    client: FlaskClient, db: Database
) -> None:
    new_patient(client, **ASHA_BODY, age=None)
    response = client.post("/patients?confirm_not_duplicate=true", json=ASHA_BODY)
    assert response.status_code == 201
    created = audit_rows(db, action="patient.create", patient_id=response.json["id"])
    assert created[0]["detail"] == "confirmed not a duplicate"


def test_an_edit_that_makes_a_likely_duplicate_is_refused_unless_confirmed(
    client: FlaskClient,
) -> None:
    new_patient(client, **ASHA_BODY, age=None)
    other = new_patient(client, name="Asha Verma", date_of_birth="1971-01-01", age=None)
    url = f"/patients/{other['id']}"
    assert client.patch(url, json={"date_of_birth": "1990-03-04"}).status_code == 409
    assert client.patch(url, json={"notes": "Prefers mornings."}).status_code == 200
    confirmed = client.patch(
        f"{url}?confirm_not_duplicate=true", json={"date_of_birth": "1990-03-04"}
    )
    assert confirmed.status_code == 200
    assert client.patch(url, json={"notes": "Changed again."}).status_code == 200


def test_deleted_patients_are_not_candidates(client: FlaskClient) -> None:
    first = new_patient(client, **ASHA_BODY, age=None)
    client.delete(f"/patients/{first['id']}")
    assert client.post("/patients", json=ASHA_BODY).status_code == 201


def test_who_might_this_be(client_as: Callable[[str], FlaskClient], db: Database) -> None:
    first = new_patient(client_as("clinician"), **ASHA_BODY, age=None)
    viewer = client_as("viewer")
    found = viewer.post("/patients/matches", json={"name": "Asha Verma", "phone": "07946 0958"})
    assert found.status_code == 200
    assert [c["id"] for c in found.json["items"]] == [first["id"]]
    assert viewer.post("/patients/matches", json={"name": "Ngozi Okafor"}).json["items"] == []
    assert len(audit_rows(db, action="patient.match", username="viewer")) == 2


@pytest.mark.parametrize("body", [{}, {"phone": "x"}, {"unknown": 1}])
def test_who_might_this_be_needs_valid_demographics(client: FlaskClient, body: dict) -> None:
    assert client.post("/patients/matches", json=body).status_code == 422


def test_the_openapi_document_describes_the_contract(client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    create = document["paths"]["/patients"]["post"]
    assert "confirm_not_duplicate" in {p["name"] for p in create["parameters"]}
    assert "409" in create["responses"]
    assert "candidates" in document["components"]["schemas"]["DuplicateProblem"]["properties"]
    assert "/patients/matches" in document["paths"]
    assert "/patients/{patient_id}/history/{version}" in document["paths"]
