"""Every FHIR response of these tests is checked against the R4B models of fhir.resources."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

FHIR_JSON = "application/fhir+json"


def fhir(response: TestResponse, status: int) -> dict[str, Any]:
    """The response's resource, after checking its status, media type and that it is valid
    FHIR (an OperationOutcome for errors)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    body = response.json
    assert body is not None
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    return body


def outcome(response: TestResponse, status: int) -> list[dict[str, Any]]:
    body = fhir(response, status)
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"]


def patient_body(**overrides: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
        "telecom": [
            {"system": "phone", "value": "+44 20 7946 0958"},
            {"system": "email", "value": "peter@example.org"},
        ],
        "gender": "male",
        "birthDate": "1974-12-25",
        "address": [{"line": ["534 Erewhon St"], "city": "PleasantVille", "postalCode": "3999"}],
        **overrides,
    }


def confirmed_patient(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    """A patient through the JSON API, confirmed not to be a duplicate of the test's others
    (tests make many alike)."""
    body = {"name": "Asha Verma", "age": 34, **fields}
    response = client.post("/patients?confirm_not_duplicate=true", json=body)
    assert response.status_code == 201, response.json
    return response.json
