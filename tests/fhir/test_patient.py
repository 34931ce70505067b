"""FHIR Patient interactions other than search, on both databases; every response validated
against the R4B models (tests/fhir/conftest.py)."""

from __future__ import annotations

from fhir.resources.R4B.patient import Patient
from flask.testing import FlaskClient

from healthcare.db.database import Database
from healthcare.fhir.resources import AGE, DISEASE, MRN_SYSTEM, NOTES, patient_resource
from tests.conftest import audit_rows
from tests.fhir.conftest import confirmed_patient, fhir, outcome, patient_body

FHIR_HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def create(client: FlaskClient, **overrides: object) -> dict:
    """A new patient, confirmed not to be a duplicate of the ones the test made before."""
    response = client.post(
        "/fhir/Patient?confirm_not_duplicate=true",
        json=patient_body(**overrides),
        headers=FHIR_HEADERS,
    )
    return fhir(response, 201)


def test_metadata_is_a_capability_statement_anyone_may_read(anonymous: FlaskClient) -> None:
    statement = fhir(anonymous.get("/fhir/metadata"), 200)
    assert statement["fhirVersion"] == "4.0.1"
    [patient] = statement["rest"][0]["resource"]
    assert patient["type"] == "Patient"
    assert {p["name"] for p in patient["searchParam"]} >= {
        "_id", "identifier", "name", "family", "given", "birthdate", "gender", "telecom",
    }  # fmt: skip
    assert patient["conditionalCreate"] is True


def test_create_answers_201_with_location_of_version_1_and_weak_etag(client: FlaskClient) -> None:
    response = client.post("/fhir/Patient", json=patient_body(), headers=FHIR_HEADERS)
    patient = fhir(response, 201)
    assert response.headers["Location"].endswith(f"/fhir/Patient/{patient['id']}/_history/1")
    assert response.headers["ETag"] == 'W/"1"'
    assert patient["meta"]["versionId"] == "1"
    assert patient["meta"]["lastUpdated"].endswith("Z")


def test_a_created_patient_reads_back_with_every_element(client: FlaskClient) -> None:
    sent = patient_body(
        extension=[
            {"url": DISEASE, "valueString": "Asthma"},
            {"url": NOTES, "valueString": "Prefers mornings."},
        ]
    )
    created = fhir(client.post("/fhir/Patient", json=sent, headers=FHIR_HEADERS), 201)
    read = fhir(client.get(f"/fhir/Patient/{created['id']}"), 200)
    assert read == created
    [name] = read["name"]
    assert (name["family"], name["given"], name["text"]) == (
        "Chalmers", ["Peter", "James"], "Peter James Chalmers",
    )  # fmt: skip
    assert read["telecom"] == sent["telecom"]
    assert (read["gender"], read["birthDate"]) == ("male", "1974-12-25")
    assert read["address"] == sent["address"]
    mrn, nhs = read["identifier"]
    assert mrn["system"] == MRN_SYSTEM
    assert mrn["type"]["coding"][0]["code"] == "MR"
    assert nhs == sent["identifier"][0]
    assert read["extension"] == sent["extension"]


def test_the_json_api_and_fhir_show_the_same_record(client: FlaskClient) -> None:
    patient = confirmed_patient(client, family_name="Verma", given_names="Asha", disease="Flu")
    resource = fhir(client.get(f"/fhir/Patient/{patient['id']}"), 200)
    assert resource["identifier"][0]["value"] == patient["mrn"]
    assert resource["name"][0]["family"] == "Verma"
    assert {"url": AGE, "valueInteger": 34} in resource["extension"]
    assert resource["meta"]["lastUpdated"] == patient["updated_at"]


def test_the_service_rules_apply_with_the_element_named(client: FlaskClient) -> None:
    body = patient_body(birthDate=None, name=[{"family": "Nobirth"}])
    issues = outcome(client.post("/fhir/Patient", json=body, headers=FHIR_HEADERS), 422)
    assert issues[0]["code"] == "processing"
    assert issues[0]["expression"] == [f"Patient.extension('{AGE}')"]
    future = patient_body(birthDate="2999-01-01")
    issues = outcome(client.post("/fhir/Patient", json=future, headers=FHIR_HEADERS), 422)
    assert issues[0]["expression"] == ["Patient.birthDate"]


def test_a_body_that_is_not_a_valid_patient_is_400(client: FlaskClient) -> None:
    for body in ({"resourceType": "Observation"}, patient_body(birthDate="25/12/1974"), [1]):
        issues = outcome(client.post("/fhir/Patient", json=body, headers=FHIR_HEADERS), 400)
        assert issues[0]["code"] == "invalid"


def test_a_body_that_is_not_json_is_415(client: FlaskClient) -> None:
    response = client.post("/fhir/Patient", data="<Patient/>", content_type="application/xml")
    assert outcome(response, 415)[0]["code"] == "not-supported"


def test_update_needs_the_current_version_when_if_match_is_sent(client: FlaskClient) -> None:
    patient = create(client)
    patient["gender"] = "other"
    url = f"/fhir/Patient/{patient['id']}"
    updated = client.put(url, json=patient, headers={"If-Match": 'W/"1"'})
    assert fhir(updated, 200)["meta"]["versionId"] == "2"
    assert updated.headers["ETag"] == 'W/"2"'
    stale = client.put(url, json=patient, headers={"If-Match": 'W/"1"'})
    assert outcome(stale, 412)[0]["code"] == "conflict"
    assert stale.headers["ETag"] == 'W/"2"'
    patient["gender"] = "female"
    assert fhir(client.put(url, json=patient), 200)["meta"]["versionId"] == "3"


def test_update_refuses_a_body_for_another_id(client: FlaskClient) -> None:
    patient = create(client)
    for sent_id in ("999", None):
        body = {**patient, "id": sent_id}
        response = client.put(f"/fhir/Patient/{patient['id']}", json=body)
        assert outcome(response, 400)[0]["expression"] == ["Patient.id"]


def test_delete_is_soft_and_a_read_then_answers_410(client: FlaskClient, db: Database) -> None:
    patient = create(client)
    url = f"/fhir/Patient/{patient['id']}"
    assert client.delete(url, headers={"If-Match": 'W/"1"'}).status_code == 204
    assert outcome(client.get(url), 410)[0]["code"] == "deleted"
    assert outcome(client.get("/fhir/Patient/987654"), 404)[0]["code"] == "not-found"
    assert client.post(f"/patients/{patient['id']}/restore").status_code == 200
    assert fhir(client.get(url), 200)["meta"]["versionId"] == "3"
    [deleted] = audit_rows(db, action="patient.delete")
    assert deleted["patient_id"] == int(patient["id"])


def test_history_lists_every_version_and_vread_reads_one(client: FlaskClient) -> None:
    patient = create(client)
    url = f"/fhir/Patient/{patient['id']}"
    client.put(url, json={**patient, "gender": "other"})
    client.delete(url)
    history = fhir(client.get(f"{url}/_history"), 200)
    assert history["type"] == "history"
    assert history["total"] == 3
    methods = [entry["request"]["method"] for entry in history["entry"]]
    assert methods == ["DELETE", "PUT", "POST"]
    assert "resource" not in history["entry"][0]
    assert history["entry"][1]["resource"]["gender"] == "other"
    first = fhir(client.get(f"{url}/_history/1"), 200)
    assert (first["gender"], first["meta"]["versionId"]) == ("male", "1")
    assert outcome(client.get(f"{url}/_history/3"), 410)[0]["code"] == "deleted"
    assert outcome(client.get(f"{url}/_history/9"), 404)[0]["code"] == "not-found"


def test_conditional_create_returns_the_patient_the_identifier_finds(client: FlaskClient) -> None:
    patient = create(client)
    condition = {"If-None-Exist": "identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"}
    again = client.post("/fhir/Patient", json=patient_body(), headers=condition)
    assert fhir(again, 200)["id"] == patient["id"]
    other = patient_body(
        identifier=[{"system": "urn:other", "value": "1"}],
        name=[{"family": "Jones", "given": ["Ann"]}],
        birthDate="2001-01-01",
        telecom=[],
    )
    condition = {"If-None-Exist": "identifier=urn:other|1"}
    assert (
        fhir(client.post("/fhir/Patient", json=other, headers=condition), 201)["id"]
        != (patient["id"])
    )


def test_a_likely_duplicate_is_refused_naming_it_unless_confirmed(client: FlaskClient) -> None:
    first = create(client)
    twin = patient_body(identifier=[], telecom=[])
    refused = client.post("/fhir/Patient", json=twin, headers=FHIR_HEADERS)
    issues = outcome(refused, 409)
    assert [issue["code"] for issue in issues[:2]] == ["duplicate", "duplicate"]
    assert issues[1]["diagnostics"].startswith(f"Patient/{first['id']} (Peter James Chalmers")
    confirmed = client.post("/fhir/Patient?confirm_not_duplicate=true", json=twin)
    assert fhir(confirmed, 201)["id"] != first["id"]


def test_conditional_create_matching_several_patients_is_412(client: FlaskClient) -> None:
    create(client, identifier=[])
    create(client, identifier=[])
    condition = {"If-None-Exist": "family=Chalmers"}
    response = client.post("/fhir/Patient", json=patient_body(), headers=condition)
    assert outcome(response, 412)[0]["code"] == "conflict"


def test_errors_outside_the_views_are_operation_outcomes_too(
    client: FlaskClient, anonymous: FlaskClient
) -> None:
    unauthorized = anonymous.get("/fhir/Patient/1")
    assert outcome(unauthorized, 401)[0]["code"] == "login"
    assert unauthorized.headers["WWW-Authenticate"].startswith("Bearer")
    assert outcome(client.get("/fhir/Observation"), 404)[0]["code"] == "not-found"
    assert outcome(client.patch("/fhir/Patient/1", json={}), 405)[0]["code"] == "not-supported"
    assert outcome(client.get("/fhir/Patient/abc"), 404)[0]["code"] == "not-found"


def test_a_viewer_may_read_but_not_write(client_as, client: FlaskClient) -> None:
    patient = create(client)
    viewer = client_as("viewer")
    fhir(viewer.get(f"/fhir/Patient/{patient['id']}"), 200)
    refused = viewer.post("/fhir/Patient", json=patient_body(), headers=FHIR_HEADERS)
    assert outcome(refused, 403)[0]["code"] == "forbidden"


def test_reads_and_changes_are_audited_as_through_the_json_api(
    client: FlaskClient, db: Database
) -> None:
    patient = create(client)
    pid = int(patient["id"])
    client.get(f"/fhir/Patient/{pid}")
    client.get(f"/patients/{pid}")
    client.get(f"/fhir/Patient/{pid}/_history")
    reads = audit_rows(db, action="patient.read", patient_id=pid)
    assert [row["outcome"] for row in reads] == ["success"] * 3
    assert reads[0]["fields"] == reads[1]["fields"]
    [created] = audit_rows(db, action="patient.create")
    assert created["patient_id"] == pid


def test_a_merged_record_links_to_the_one_that_replaced_it() -> None:
    record = {"name": "Asha Verma", "family_name": "Verma", "merged_into": 7, "replaces": [3]}
    resource = patient_resource(record, 5, 2, "2026-01-01T00:00:00Z")
    Patient.model_validate(resource)
    assert resource["link"] == [
        {"other": {"reference": "Patient/7"}, "type": "replaced-by"},
        {"other": {"reference": "Patient/3"}, "type": "replaces"},
    ]


def test_a_merged_record_reads_with_a_link_to_its_survivor(client: FlaskClient) -> None:
    survivor = confirmed_patient(client, name="Asha Verma")
    merged = confirmed_patient(client, name="Asha Vrema")
    body = {"source_id": merged["id"], "source_version": 1, "target_version": 1}
    assert client.post(f"/patients/{survivor['id']}/merge", json=body).status_code == 200
    resource = fhir(client.get(f"/fhir/Patient/{merged['id']}"), 200)
    assert resource["link"] == [
        {"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}
    ]
    replaces = [{"other": {"reference": f"Patient/{merged['id']}"}, "type": "replaces"}]
    assert fhir(client.get(f"/fhir/Patient/{survivor['id']}"), 200)["link"] == replaces
    bundle = fhir(client.get("/fhir/Patient?family=Verma"), 200)
    [entry] = [e for e in bundle["entry"] if e["resource"]["id"] == str(survivor["id"])]
    assert entry["resource"]["link"] == replaces
