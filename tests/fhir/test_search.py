"""FHIR Patient search, in process: parameters, prefixes, paging links, refusals, audit."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask.testing import FlaskClient

from healthcare.db.database import Database
from healthcare.fhir.search import birth_date_range
from tests.conftest import audit_rows
from tests.fhir.conftest import confirmed_patient, fhir, outcome


def search(client: FlaskClient, query: str) -> dict[str, Any]:
    bundle = fhir(client.get(f"/fhir/Patient?{query}"), 200)
    assert bundle["type"] == "searchset"
    return bundle


def ids(bundle: dict[str, Any]) -> list[int]:
    return [int(entry["resource"]["id"]) for entry in bundle.get("entry", [])]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((lk["url"] for lk in bundle["link"] if lk["relation"] == relation), None)


def follow(client: FlaskClient, url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return fhir(client.get(f"{parts.path}?{parts.query}"), 200)


@pytest.fixture
def born(client: FlaskClient) -> dict[str, int]:
    """Patients born on days around 1980-06-15, by that day."""
    days = ("1979-12-31", "1980-01-01", "1980-06-14", "1980-06-15", "1980-06-16", "1981-01-01")
    return {
        day: confirmed_patient(client, name=f"Born {day}", date_of_birth=day, age=None)["id"]
        for day in days
    }


@pytest.mark.parametrize(
    ("query", "days"),
    [
        ("birthdate=1980-06-15", ["1980-06-15"]),
        ("birthdate=eq1980-06-15", ["1980-06-15"]),
        ("birthdate=1980", ["1980-01-01", "1980-06-14", "1980-06-15", "1980-06-16"]),
        ("birthdate=1980-06", ["1980-06-14", "1980-06-15", "1980-06-16"]),
        ("birthdate=ge1980-06-15", ["1980-06-15", "1980-06-16", "1981-01-01"]),
        ("birthdate=gt1980-06-15", ["1980-06-16", "1981-01-01"]),
        ("birthdate=le1980-01-01", ["1979-12-31", "1980-01-01"]),
        ("birthdate=lt1980", ["1979-12-31"]),
        ("birthdate=gt1980-01-01&birthdate=lt1980-06-16", ["1980-06-14", "1980-06-15"]),
        ("birthdate=ge1981&birthdate=le1979", []),
    ],
)
def test_birthdate_prefixes_and_ranges(
    client: FlaskClient, born: dict[str, int], query: str, days: list[str]
) -> None:
    assert ids(search(client, query)) == [born[day] for day in days]


def test_a_birth_date_span_takes_month_lengths_and_leap_years() -> None:
    assert birth_date_range(["2024-02"]) == {"born_from": "2024-02-01", "born_to": "2024-02-29"}
    assert birth_date_range(["gt2023-02"]) == {"born_from": "2023-03-01"}


def test_each_parameter_finds_its_patient(client: FlaskClient) -> None:
    target = confirmed_patient(
        client, name=None, family_name="Ångström", given_names="Zoë Ann", gender="female",
        phone="+44 20 7946 0958", email="Zoe@Example.org", date_of_birth="1990-02-28", age=None,
        identifiers=[{"system": "urn:nhs", "value": "943"}],
    )  # fmt: skip
    confirmed_patient(client, name="Zed Angel", gender="male", phone="555 0101")
    queries = [
        f"_id={target['id']}", "identifier=urn:nhs|943", f"identifier={target['mrn']}",
        f"identifier=urn:healthcare:mrn|{target['mrn']}", "name=zoe", "name=angs",
        "family=angst", "given=zoe a", "family=ang&given=zo", "gender=female",
        "telecom=phone|020 7946 0958", "telecom=zoe@example.org", "phone=(020) 7946-0958",
        "email=ZOE@example.org", "name=zoe&birthdate=1990&gender=female",
    ]  # fmt: skip
    for query in queries:
        assert ids(search(client, query)) == [target["id"]], query


def test_unmatched_and_impossible_values_find_nobody(client: FlaskClient) -> None:
    confirmed_patient(client)
    for query in ("_id=999", "_id=abc", "identifier=urn:nhs|nope", "family=zzz", "gender=other"):
        bundle = search(client, query)
        assert (bundle["total"], ids(bundle)) == (0, []), query


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("shoe_size=9", "shoe_size"),
        ("family:exact=Verma", "family:exact"),
        ("family=Verma&family=Okafor", "family"),
        ("gender=male,female", "gender"),
        ("birthdate=ne1980", "birthdate"),
        ("birthdate=1980-13", "birthdate"),
        ("birthdate=yesterday", "birthdate"),
        ("identifier=just-a-value", "identifier"),
        ("telecom=fax|123", "telecom"),
        ("gender=robot", "gender"),
        ("_count=many", "_count"),
        ("_after=x", "_after"),
    ],
)
def test_what_is_not_supported_is_a_400_naming_the_parameter(
    client: FlaskClient, query: str, parameter: str
) -> None:
    issues = outcome(client.get(f"/fhir/Patient?{query}"), 400)
    assert issues[0]["expression"] == [parameter]


def test_pages_link_forward_and_back_by_key(client: FlaskClient) -> None:
    made = [confirmed_patient(client, name=f"Page Person{i}")["id"] for i in range(5)]
    first = search(client, "name=page&_count=2")
    assert (first["total"], ids(first)) == (5, made[:2])
    assert link(first, "previous") is None
    assert dict(parse_qsl(urlsplit(link(first, "self")).query)) == {"name": "page", "_count": "2"}
    assert [entry["fullUrl"] for entry in first["entry"]] == [
        f"http://localhost/fhir/Patient/{pid}" for pid in made[:2]
    ]
    client.delete(f"/patients/{made[1]}")  # gone after it was shown: nothing shifts
    second = follow(client, link(first, "next"))
    assert ids(second) == made[2:4]
    last = follow(client, link(second, "next"))
    assert (ids(last), link(last, "next")) == (made[4:], None)
    back = follow(client, link(last, "previous"))
    assert ids(back) == made[2:4]
    assert ids(follow(client, link(back, "previous"))) == [made[0]]


def test_count_zero_gives_the_total_alone(client: FlaskClient) -> None:
    for i in range(3):
        confirmed_patient(client, name=f"Counted {i}")
    bundle = search(client, "name=counted&_count=0")
    assert (bundle["total"], ids(bundle)) == (3, [])


def test_a_search_is_audited_as_a_listing(client: FlaskClient, db: Database) -> None:
    search(client, "family=verma")
    client.get("/patients?family=verma")
    listings = audit_rows(db, action="patient.list")
    assert len(listings) == 2
    assert listings[0]["username"] == listings[1]["username"] == "admin"
