"""Patient files: CSV with a documented header, and FHIR NDJSON (one Patient per line).

Writing turns records (as the API shows them) into lines; reading turns a file's lines into
validated patient data, or the problems of each row, by row number. See docs/fhir.md."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from pydantic import ValidationError

from healthcare.api.problems import field_errors
from healthcare.auth.access import Actor
from healthcare.db.database import Database
from healthcare.exchange import ndjson, tabular
from healthcare.fhir.resources import InvalidRequest
from healthcare.patients.bulk import Row, export_patients
from healthcare.patients.schemas import PatientIn

Format = Literal["csv", "ndjson"]
FORMATS: tuple[Format, ...] = ("csv", "ndjson")
MEDIA_TYPES = {"csv": "text/csv", "ndjson": "application/fhir+ndjson"}


def export_lines(db: Database, actor: Actor, fmt: Format) -> Iterator[str]:
    """The lines of an export of every patient (audited as they are read)."""
    if fmt == "csv":
        yield tabular.header_line()
    write = tabular.patient_line if fmt == "csv" else ndjson.patient_line
    for batch in export_patients(db, actor, fmt):
        yield "".join(write(patient) for patient in batch)


def format_of(path: str) -> Format:
    """The format a file's name says: .ndjson or .jsonl for NDJSON, CSV otherwise."""
    return "ndjson" if path.lower().endswith((".ndjson", ".jsonl")) else "csv"


def read_patients(lines: Iterable[str], fmt: Format) -> Iterator[Row]:
    """(row number, the patient's validated data or what is wrong with the row) per row."""
    if fmt == "csv":
        for number, fields in tabular.read_rows(lines):
            yield number, _checked(lambda fields=fields: PatientIn.model_validate(fields))
    else:
        for number, line in ndjson.read_rows(lines):
            yield number, _checked(lambda line=line: ndjson.patient_data(line))


def _checked(parse: Callable[[], PatientIn]) -> PatientIn | list[str]:
    try:
        return parse()
    except ValidationError as exc:
        return [f"{e['field']}: {e['message']}" for e in field_errors(exc)]
    except InvalidRequest as exc:
        return [f"{where}: {message}" for where, message in exc.errors]
