"""FHIR R4 Patient resources to and from the service's patient records.

Pure mapping, no rules: what a record may hold is decided by ``PatientIn`` and the service.
A record's fields that FHIR's Patient has no element for (an age without a birth date, the
disease, the notes) travel as extensions; see docs/fhir.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.patient import Patient as FhirPatient
from pydantic import ValidationError

from healthcare.patients.schemas import PatientIn

FHIR_VERSION = "4.0.1"
MRN_SYSTEM = "urn:healthcare:mrn"
EXTENSION = "urn:healthcare:fhir:patient-"
AGE, DISEASE, NOTES = (f"{EXTENSION}{name}" for name in ("age", "disease", "notes"))
MRN_TYPE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"},
    ],
    "text": "Medical record number",
}
# Where each field of a record lives in a Patient resource (for errors that name a field).
FHIR_PATHS = {
    "name": "Patient.name.text",
    "family_name": "Patient.name.family",
    "given_names": "Patient.name.given",
    "age": f"Patient.extension('{AGE}')",
    "disease": f"Patient.extension('{DISEASE}')",
    "gender": "Patient.gender",
    "date_of_birth": "Patient.birthDate",
    "phone": "Patient.telecom",
    "email": "Patient.telecom",
    "address_lines": "Patient.address.line",
    "city": "Patient.address.city",
    "postal_code": "Patient.address.postalCode",
    "country": "Patient.address.country",
    "identifiers": "Patient.identifier",
    "notes": f"Patient.extension('{NOTES}')",
}


class InvalidRequest(ValueError):
    """A request FHIR R4 or this server does not accept (400), with where and why."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {message}" for where, message in errors))
        self.errors = errors


def patient_resource(
    record: Mapping[str, Any], patient_id: int, version: int, last_updated: str
) -> dict[str, Any]:
    """A Patient resource from a record's fields (as the API or a history version holds them)."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient_id),
        "meta": {"versionId": str(version), "lastUpdated": last_updated},
    }
    elements = {
        "extension": _extensions(record),
        "identifier": _identifiers(record),
        "name": [_name(record)],
        "telecom": _telecom(record),
        "gender": record.get("gender"),
        "birthDate": record.get("date_of_birth"),
        "address": _address(record),
        "link": _links(record),
    }
    resource.update((key, value) for key, value in elements.items() if value)
    return resource


def _extensions(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    extensions = []
    if record.get("date_of_birth") is None and record.get("age") is not None:
        extensions.append({"url": AGE, "valueInteger": record["age"]})
    if record.get("disease"):
        extensions.append({"url": DISEASE, "valueString": record["disease"]})
    if record.get("notes"):
        extensions.append({"url": NOTES, "valueString": record["notes"]})
    return extensions


def _identifiers(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = []
    if record.get("mrn"):
        found.append(
            {"use": "usual", "type": MRN_TYPE, "system": MRN_SYSTEM, "value": record["mrn"]}
        )
    found += [{"system": i["system"], "value": i["value"]} for i in record.get("identifiers") or []]
    return found


def _name(record: Mapping[str, Any]) -> dict[str, Any]:
    name: dict[str, Any] = {"use": "official", "text": record["name"]}
    if record.get("family_name"):
        name["family"] = record["family_name"]
    if record.get("given_names"):
        name["given"] = record["given_names"].split()
    return name


def _telecom(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"system": system, "value": record[field]}
        for system, field in (("phone", "phone"), ("email", "email"))
        if record.get(field)
    ]


def _address(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    address: dict[str, Any] = {}
    if record.get("address_lines"):
        address["line"] = record["address_lines"].splitlines()
    for element, field in (("city", "city"), ("postalCode", "postal_code"), ("country", "country")):
        if record.get(field):
            address[element] = record[field]
    return [address] if address else []


def _links(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Merged records: the survivor replaces the one merged into it (issue 14's merge)."""
    links = []
    if record.get("merged_into"):
        other = {"reference": f"Patient/{record['merged_into']}"}
        links.append({"other": other, "type": "replaced-by"})
    links += [
        {"other": {"reference": f"Patient/{merged}"}, "type": "replaces"}
        for merged in record.get("replaces") or []
    ]
    return links


def parse_patient(body: Any) -> FhirPatient:
    """The body as an R4 Patient, or InvalidRequest naming what is wrong where."""
    if not isinstance(body, dict) or body.get("resourceType") != "Patient":
        raise InvalidRequest([("resourceType", "the body must be a Patient resource")])
    try:
        return FhirPatient.model_validate(body)
    except ValidationError as exc:
        errors = [
            (".".join(["Patient", *(str(part) for part in err["loc"])]), err["msg"])
            for err in exc.errors(include_url=False)
        ]
        raise InvalidRequest(errors) from None


def patient_input(resource: FhirPatient) -> PatientIn:
    """The record a Patient resource describes, validated by the service's own schema."""
    fields: dict[str, Any] = {}
    fields.update(_name_fields(resource))
    fields.update(_extension_fields(resource))
    if resource.gender:
        fields["gender"] = resource.gender
    if resource.birthDate:
        fields["date_of_birth"] = str(resource.birthDate)
    for point in resource.telecom or []:
        if point.system in ("phone", "email") and point.value:
            fields.setdefault(point.system, point.value)
    fields.update(_address_fields(resource))
    identifiers = [
        {"system": i.system, "value": i.value}
        for i in resource.identifier or []
        if i.system != MRN_SYSTEM and i.system and i.value
    ]
    if identifiers:
        fields["identifiers"] = identifiers
    return PatientIn.model_validate(fields)


def _name_fields(resource: FhirPatient) -> dict[str, Any]:
    names = resource.name or []
    chosen = next((n for n in names if n.use == "official"), names[0] if names else None)
    if chosen is None:
        return {}
    fields: dict[str, Any] = {}
    if chosen.text:
        fields["name"] = chosen.text
    if chosen.family:
        fields["family_name"] = chosen.family
    if chosen.given:
        fields["given_names"] = " ".join(chosen.given)
    return fields


def _extension_fields(resource: FhirPatient) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for extension in resource.extension or []:
        if extension.url == AGE and extension.valueInteger is not None:
            fields["age"] = extension.valueInteger
        elif extension.url == DISEASE and extension.valueString:
            fields["disease"] = extension.valueString
        elif extension.url == NOTES and extension.valueString:
            fields["notes"] = extension.valueString
    return fields


def _address_fields(resource: FhirPatient) -> dict[str, Any]:
    if not resource.address:
        return {}
    address = resource.address[0]
    fields = {
        "address_lines": "\n".join(address.line) if address.line else None,
        "city": address.city,
        "postal_code": address.postalCode,
        "country": address.country,
    }
    return {key: value for key, value in fields.items() if value}
