"""The FHIR API driven by two real client libraries against a live server, as an integrating
developer would: read the capabilities, create, search by each parameter (cases after the US
Core Patient search tests), page through a result, update with a stale version, delete."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fhir.resources.R4B import get_fhir_model_class
from fhirclient import client as smart_client
from fhirclient.models.patient import Patient as SmartPatient
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound, ResourceNotFound

from tests.e2e.conftest import Server, api_session

pytestmark = pytest.mark.slow
NHS = "https://fhir.nhs.uk/Id/nhs-number"


def validated(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
    """A response hook: every FHIR body the server sends must be valid R4 (R4B models)."""
    if response.headers.get("Content-Type", "").startswith("application/fhir+json"):
        body = response.json()
        get_fhir_model_class(body["resourceType"]).model_validate(body)


@pytest.fixture
def token(database_url: str) -> str:
    session = api_session(database_url, "clinician")
    return session.headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def fhirpy(live_server: Server, token: str) -> SyncFHIRClient:
    return SyncFHIRClient(
        f"{live_server.url}/fhir",
        authorization=f"Bearer {token}",
        requests_config={"hooks": {"response": [validated]}},
    )


@pytest.fixture
def smart(live_server: Server, token: str) -> Iterator[smart_client.FHIRClient]:
    settings = {"app_id": "healthcare-tests", "api_base": f"{live_server.url}/fhir/"}
    smart = smart_client.FHIRClient(settings=settings)
    smart.server.session.headers["Authorization"] = f"Bearer {token}"
    smart.server.session.hooks["response"].append(validated)
    yield smart
    smart.server.session.close()


HEX_AS_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def family() -> str:
    """A family name no other test uses, so that searches see only this test's patients.
    Random letters with no common prefix: names sharing one ("Fam...") scored as likely
    duplicates of each other's Amy (same given name and birth date), so a create got a 409."""
    return uuid.uuid4().hex[:12].translate(HEX_AS_LETTERS).capitalize()


def _phone_no_other_test_uses() -> str:
    """Seven uniform random digits. Every test's Amy shares a birth date, and a shared phone
    as well made her a likely duplicate of another test's (the first four digits of a UUID's
    integer, used before, are far from uniform: a create got a 409 now and then)."""
    digits = f"{uuid.uuid4().int % 10**7:07d}"
    return f"555-{digits[:3]}-{digits[3:]}"


def us_core_patient(family_name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NHS, "value": uuid.uuid4().hex[:10]}],
        "name": [{"family": family_name, "given": ["Amy", "V."]}],
        "telecom": [
            {"system": "phone", "value": _phone_no_other_test_uses()},
            {"system": "email", "value": f"{family_name.lower()}@example.org"},
        ],
        "gender": "female",
        "birthDate": "1987-02-20",
        **overrides,
    }


def test_fhirclient_reads_the_capability_statement(smart: smart_client.FHIRClient) -> None:
    smart.server.get_capability()
    capability = smart.server.capabilityStatement
    assert capability.fhirVersion == "4.0.1"
    patient = capability.rest[0].resource[0]
    assert patient.type == "Patient"
    assert {p.name for p in patient.searchParam} >= {"name", "birthdate", "identifier"}


def test_fhirclient_creates_reads_searches_updates_and_deletes(
    smart: smart_client.FHIRClient,
) -> None:
    server = smart.server
    name = family()
    created = SmartPatient(us_core_patient(name)).create(server)
    patient = SmartPatient.read(created["id"], server)
    assert patient.name[0].family == name
    assert patient.meta.versionId == "1"
    found = list(SmartPatient.where({"family": name}).perform_resources_iter(server))
    assert [p.id for p in found] == [patient.id]
    patient.gender = "other"
    patient.update(server)
    assert SmartPatient.read(patient.id, server).meta.versionId == "2"
    server.session.headers["If-Match"] = 'W/"1"'
    patient.gender = "unknown"
    with pytest.raises(requests.HTTPError) as stale:
        patient.update(server)
    assert stale.value.response.status_code == 412
    del server.session.headers["If-Match"]
    patient.delete(server)
    with pytest.raises(requests.HTTPError) as gone:
        SmartPatient.read(patient.id, server)
    assert gone.value.response.status_code == 410


def test_fhirclient_pages_through_a_search(smart: smart_client.FHIRClient) -> None:
    name = family()
    # Five records alike: each is confirmed not to be a duplicate of the others (see docs).
    create = "Patient?confirm_not_duplicate=true"
    ids = [smart.server.post_json(create, us_core_patient(name)).json()["id"] for _ in range(5)]
    search = SmartPatient.where({"family": name, "_count": "2"})
    pages = list(search.perform_iter(smart.server))
    assert [len(page.entry) for page in pages] == [2, 2, 1]
    assert [e.resource.id for page in pages for e in page.entry] == ids
    assert {page.total for page in pages} == {5}


@pytest.fixture
def amy(fhirpy: SyncFHIRClient) -> Any:
    patient = fhirpy.resource("Patient", **us_core_patient(family()))
    patient.save()
    return patient


def _ids(search: Any) -> list[str]:
    return [resource.id for resource in search.fetch_all()]


def test_fhirpy_reads_the_capability_statement(fhirpy: SyncFHIRClient) -> None:
    statement = fhirpy.execute("metadata", method="get")
    assert statement["resourceType"] == "CapabilityStatement"


def test_fhirpy_creates_and_reads(fhirpy: SyncFHIRClient, amy: Any) -> None:
    assert amy.id
    assert amy["meta"]["versionId"] == "1"
    read = fhirpy.reference("Patient", amy.id).to_resource()
    assert read["name"][0]["family"] == amy["name"][0]["family"]
    assert read["identifier"][0]["system"] == "urn:healthcare:mrn"


def test_fhirpy_searches_by_each_us_core_parameter(fhirpy: SyncFHIRClient, amy: Any) -> None:
    patients = fhirpy.resources("Patient")
    name = amy["name"][0]["family"]
    nhs = amy["identifier"][-1]["value"]
    phone = amy["telecom"][0]["value"]
    email = amy["telecom"][1]["value"]
    searches = {
        "_id": patients.search(_id=amy.id),
        "identifier": patients.search(identifier=f"{NHS}|{nhs}"),
        "name": patients.search(name=name.lower()),
        "family": patients.search(family=name[:-2]),
        "given with family": patients.search(family=name, given="amy"),
        "birthdate with family": patients.search(family=name, birthdate="1987-02-20"),
        "birthdate range": patients.search(family=name, birthdate=["ge1987-01", "lt1988"]),
        "gender with family": patients.search(family=name, gender="female"),
        "name with birthdate": patients.search(name=name, birthdate="1987"),
        "telecom": patients.search(telecom=f"phone|{phone}"),
        "phone": patients.search(phone=phone.replace("-", " ")),
        "email": patients.search(email=email.upper()),
    }
    for label, search in searches.items():
        assert _ids(search) == [amy.id], label
    misses = {
        "other gender": patients.search(family=name, gender="male"),
        "before birth": patients.search(family=name, birthdate="lt1987-02-20"),
        "after birth": patients.search(family=name, birthdate="gt1987-02-20"),
        "unknown identifier": patients.search(identifier=f"{NHS}|nope"),
    }
    for label, search in misses.items():
        assert _ids(search) == [], label


def test_fhirpy_pages_through_a_result_while_records_change(
    fhirpy: SyncFHIRClient, live_server: Server
) -> None:
    name = family()
    made = []
    for _ in range(7):
        patient = fhirpy.resource("Patient", **us_core_patient(name))
        patient.save(search_params={"confirm_not_duplicate": "true"})
        made.append(patient)
    search = fhirpy.resources("Patient").search(family=name).limit(3)
    assert search.count() == 7
    assert _ids(search) == [p.id for p in made]
    http = requests.Session()
    http.headers["Authorization"] = fhirpy.authorization
    http.hooks["response"].append(validated)
    first = http.get(f"{live_server.url}/fhir/Patient?family={name}&_count=3", timeout=10).json()
    made[0].delete()  # a patient of the page already read goes: the next page is still right
    second = http.get(_link(first, "next"), timeout=10).json()
    assert [e["resource"]["id"] for e in second["entry"]] == [p.id for p in made[3:6]]
    assert second["total"] == 6
    back = http.get(_link(second, "previous"), timeout=10).json()
    assert [e["resource"]["id"] for e in back["entry"]] == [p.id for p in made[1:3]]
    assert _ids(search) == [p.id for p in made[1:]]


def _link(bundle: dict[str, Any], relation: str) -> str:
    return next(link["url"] for link in bundle["link"] if link["relation"] == relation)


def test_fhirpy_update_with_a_stale_version_is_refused(fhirpy: SyncFHIRClient, amy: Any) -> None:
    amy["gender"] = "other"
    amy.save()
    assert amy["meta"]["versionId"] == "2"
    fhirpy.extra_headers = {"If-Match": 'W/"1"'}
    amy["gender"] = "unknown"
    with pytest.raises(MultipleResourcesFound):  # fhirpy's name for a 412
        amy.save()
    fhirpy.extra_headers = None
    assert fhirpy.reference("Patient", amy.id).to_resource()["gender"] == "other"


def test_fhirpy_deletes(fhirpy: SyncFHIRClient, amy: Any) -> None:
    amy.delete()
    with pytest.raises(ResourceNotFound):
        fhirpy.reference("Patient", amy.id).to_resource()
    assert _ids(fhirpy.resources("Patient").search(_id=amy.id)) == []
