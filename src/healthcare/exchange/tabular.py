"""CSV: one patient a row under a fixed header, safe to open in a spreadsheet.

A cell that a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage
return) is written with a leading apostrophe, and so is a cell that starts with one, so that
reading strips exactly one apostrophe and gets back what was written."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

HEADER = (
    "id", "mrn", "name", "family_name", "given_names", "date_of_birth", "age", "gender",
    "phone", "email", "address_lines", "city", "postal_code", "country", "identifiers",
    "disease", "notes", "version", "created_at", "updated_at",
)  # fmt: skip
# Written for reference, ignored on import: the service assigns these.
ASSIGNED = frozenset({"id", "mrn", "version", "created_at", "updated_at"})
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


class UnreadableFile(ValueError):
    """The file as a whole cannot be read as patients (not one row's problem)."""


def neutralised(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def restored(value: str) -> str:
    return value[1:] if value.startswith("'") else value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # identifiers: system|value, one a line
        value = "\n".join(f"{i['system']}|{i['value']}" for i in value)
    return neutralised(str(value))


def _line(cells: Iterable[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def header_line() -> str:
    return _line(HEADER)


def patient_line(patient: Mapping[str, Any]) -> str:
    return _line(_cell(patient.get(name)) for name in HEADER)


def read_rows(text: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, fields) for each data row; row 1 is the header. The fields are what the
    service's schema takes: empty cells left out, identifiers as a list."""
    reader = csv.DictReader(text)
    unknown = set(reader.fieldnames or ()) - set(HEADER)
    if unknown:
        raise UnreadableFile(f"unknown columns: {', '.join(sorted(unknown))} (see docs/fhir.md)")
    for number, row in enumerate(reader, start=2):
        yield number, _fields(row)


def _fields(row: Mapping[str, str | None]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, cell in row.items():
        if name is None or name in ASSIGNED or not cell:
            continue
        value = restored(cell)
        if name == "identifiers":
            fields[name] = [_identifier(line) for line in value.splitlines() if line.strip()]
        elif name == "age":
            fields[name] = int(value) if value.isdigit() else value
        else:
            fields[name] = value
    if "date_of_birth" in fields:
        fields.pop("age", None)  # derived from the birth date, and a day older by now
    return fields


def _identifier(line: str) -> dict[str, str]:
    system, _, value = line.partition("|")
    return {"system": system, "value": value}
