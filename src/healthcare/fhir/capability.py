"""GET /fhir/metadata: what this server supports, stated exactly (read without a token)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from healthcare.fhir.resources import FHIR_VERSION

INTERACTIONS = ("read", "vread", "update", "delete", "history-instance", "create", "search-type")
SEARCH_PARAMETERS = (
    ("_id", "token", "The resource id."),
    (
        "identifier",
        "token",
        "system|value, exact; the record number's system is urn:healthcare:mrn.",
    ),
    ("name", "string", "Start of any word of the name; case and accents ignored."),
    ("family", "string", "Start of the family name; case and accents ignored."),
    ("given", "string", "Start of the given names; case and accents ignored."),
    ("birthdate", "date", "eq (default), ge, le, gt, lt; repeat the parameter for a range."),
    ("gender", "token", "male, female, other or unknown."),
    ("telecom", "token", "A phone number or an e-mail address (phone|... or email|...)."),
    ("phone", "token", "Any format: the last nine digits must match."),
    ("email", "token", "The e-mail address, any case."),
)


def capability_statement(base_url: str, software_date: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": software_date,
        "kind": "instance",
        "software": {"name": "healthcare", "version": version("healthcare")},
        "implementation": {"description": "Patient records for a clinic", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [{"text": "Bearer token (healthcare tokens create)"}],
                    "description": "Send Authorization: Bearer <token>; roles as the JSON API.",
                },
                "resource": [_patient()],
            }
        ],
    }


def _patient() -> dict[str, Any]:
    return {
        "type": "Patient",
        "profile": "http://hl7.org/fhir/StructureDefinition/Patient",
        "interaction": [{"code": code} for code in INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": True,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [
            {"name": name, "type": kind, "documentation": text}
            for name, kind, text in SEARCH_PARAMETERS
        ],
    }
