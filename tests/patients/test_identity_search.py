"""Search by structured demographics: family, given, date of birth, phone, identifier, MRN."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.conftest import new_patient

PEOPLE = [
    {"family_name": "Núñez", "given_names": "José", "date_of_birth": "1980-05-01",
     "phone": "+44 20 7946 0958", "identifiers": [{"system": "nhs", "value": "111"}]},
    {"family_name": "Nunes", "given_names": "Ana", "date_of_birth": "1980-05-02",
     "phone": "555 0101"},
    {"family_name": "Smith", "given_names": "José", "date_of_birth": "1975-12-31",
     "identifiers": [{"system": "other", "value": "111"}]},
    {"family_name": "Smithers", "given_names": "Waylon", "date_of_birth": "1980-05-01"},
]  # fmt: skip


@pytest.fixture
def people(client: FlaskClient) -> dict[str, dict]:
    made = {}
    for person in PEOPLE:
        body = {**person, "age": None}
        made[person["family_name"]] = new_patient(client, **body)
    return made


def _families(client: FlaskClient, query: str) -> list[str]:
    response = client.get(f"/patients?{query}")
    assert response.status_code == 200, response.json
    page = response.json
    assert page["total"] == len(page["items"])
    return sorted(p["family_name"] for p in page["items"])


@pytest.mark.usefixtures("people")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("family=nunez", ["Núñez"]),
        ("family=NUN", ["Nunes", "Núñez"]),
        ("family=smith", ["Smith", "Smithers"]),
        ("given=jose", ["Smith", "Núñez"]),
        ("family=smith&given=jos", ["Smith"]),
        ("date_of_birth=1980-05-01", ["Núñez", "Smithers"]),
        ("born_from=1980-05-01&born_to=1980-05-02", ["Nunes", "Núñez", "Smithers"]),
        ("born_to=1979-01-01", ["Smith"]),
        ("family=n&date_of_birth=1980-05-02", ["Nunes"]),
        ("phone=020%207946%200958", ["Núñez"]),
        ("phone=5550101", ["Nunes"]),
        ("identifier=nhs|111", ["Núñez"]),
        ("identifier=other|111", ["Smith"]),
        ("identifier=nhs|112", []),
        ("family=zz", []),
    ],
)
def test_search_by_demographics(client: FlaskClient, query: str, expected: list[str]) -> None:
    assert _families(client, query) == sorted(expected)


def test_search_by_record_number(client: FlaskClient, people: dict[str, dict]) -> None:
    mrn = people["Smith"]["mrn"]
    assert _families(client, f"mrn={mrn.lower()}") == ["Smith"]


def test_deleted_patients_are_not_found(client: FlaskClient, people: dict[str, dict]) -> None:
    client.delete(f"/patients/{people['Smith']['id']}")
    assert _families(client, "family=smith") == ["Smithers"]
    assert _families(client, "identifier=other|111") == []


@pytest.mark.parametrize(
    "query", ["identifier=111", "identifier=a|b|c", "date_of_birth=1980-5-1", "phone=ab", "given="]
)
def test_malformed_search_parameters_are_422(client: FlaskClient, query: str) -> None:
    assert client.get(f"/patients?{query}").status_code == 422
