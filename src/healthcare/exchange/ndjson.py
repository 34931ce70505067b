"""FHIR NDJSON: one Patient resource a line, as FHIR Bulk Data files are."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from healthcare.fhir.resources import InvalidRequest, parse_patient, patient_input, patient_resource
from healthcare.patients.schemas import PatientIn


def patient_line(patient: Mapping[str, Any]) -> str:
    resource = patient_resource(patient, patient["id"], patient["version"], patient["updated_at"])
    return orjson.dumps(resource).decode() + "\n"


def read_rows(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, line) for each line that is not blank."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line


def patient_data(line: str) -> PatientIn:
    """The patient a line describes; InvalidRequest or a ValidationError when it is not one."""
    try:
        body = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest([("line", f"not JSON: {exc}")]) from None
    return patient_input(parse_patient(body))
