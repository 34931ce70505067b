"""FHIR search on Patient: parameters to the listing's query, its page to a searchset Bundle.

Pages are keyset pages in id order (``_after``/``_before`` an id, in the links this server
writes), so that a ``next`` link stays correct while patients are added or deleted: it names
the last patient seen, never a position. The total counts every match."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

from healthcare.fhir.resources import MRN_SYSTEM, InvalidRequest, patient_resource
from healthcare.patients.identifiers import is_valid_mrn
from healthcare.patients.schemas import MAX_PATIENT_ID, PatientQuery

DEFAULT_COUNT = 50
MAX_COUNT = 200  # a page is fetched with one row more: within the listing's limit
PARTIAL_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
PREFIXES = ("eq", "ge", "le", "gt", "lt")
# FHIR parameter -> the listing's field, where the value passes unchanged.
PLAIN = {"name": "q", "family": "family", "given": "given", "gender": "gender",
         "phone": "phone", "email": "email"}  # fmt: skip
PAGING = ("_after", "_before")
# Always JSON, always an accurate total; fhirpy's count() sends _totalMethod.
IGNORED = frozenset({"_format", "_total", "_totalMethod"})


@dataclass(frozen=True)
class Search:
    criteria: PatientQuery
    parameters: list[tuple[str, str]]  # the search's own parameters, for the links
    count: int
    backwards: bool


def search_query(args: MultiDict[str, str]) -> Search:
    """The listing query for FHIR search parameters; InvalidRequest for what is not
    supported, naming the parameter."""
    fields: dict[str, Any] = {}
    parameters: list[tuple[str, str]] = []
    for key, values in args.lists():
        if key in IGNORED or key in PAGING or key == "_count":
            continue
        _refuse_unsupported(key, values)
        parameters += [(key, value) for value in values]
        if key == "birthdate":
            fields.update(birth_date_range(values))
        else:
            fields.update(_field(key, values[0]))
    count = _count(args.get("_count"))
    after, before = (_cursor(args.get(name), name) for name in PAGING)
    fields.update(limit=count + 1, sort="-id" if before else "id", after=after, before=before)
    try:
        criteria = PatientQuery.model_validate(fields)
    except ValidationError as exc:
        errors = [(str(e["loc"][0]) if e["loc"] else "query", e["msg"]) for e in exc.errors()]
        raise InvalidRequest(errors) from None
    return Search(criteria, parameters, count, backwards=before is not None)


def _refuse_unsupported(key: str, values: list[str]) -> None:
    name = key.partition(":")[0]
    if name not in (*PLAIN, "_id", "identifier", "birthdate", "telecom"):
        raise InvalidRequest([(key, "this search parameter is not supported (see /fhir/metadata)")])
    if ":" in key:
        raise InvalidRequest([(key, "search modifiers are not supported")])
    if len(values) > 1 and key != "birthdate":
        raise InvalidRequest([(key, "give this parameter once (only birthdate repeats)")])
    if any("," in value for value in values):
        raise InvalidRequest([(key, "several values separated by commas are not supported")])


def _field(key: str, value: str) -> dict[str, Any]:
    if key in PLAIN:
        return {PLAIN[key]: value}
    if key == "_id":
        if not value.isdigit() or not 1 <= int(value) <= MAX_PATIENT_ID:
            return {"id": 0}  # no patient has it
        return {"id": int(value)}
    if key == "identifier":
        return _identifier(value)
    return _telecom(value)


def _identifier(value: str) -> dict[str, Any]:
    system, bar, code = value.rpartition("|")
    if not bar:
        if is_valid_mrn(value):
            return {"mrn": value}
        raise InvalidRequest(
            [("identifier", "give system|value (the value alone only for an MRN)")]
        )
    if system == MRN_SYSTEM:
        return {"mrn": code}
    return {"identifier": value}


def _telecom(value: str) -> dict[str, Any]:
    system, bar, code = value.partition("|")
    if not bar:
        system, code = ("email" if "@" in value else "phone"), value
    if system not in ("phone", "email"):
        raise InvalidRequest([("telecom", "the system must be phone or email")])
    return {system: code}


def _count(value: str | None) -> int:
    """The page size: 0 asks for the total alone."""
    if value is None:
        return DEFAULT_COUNT
    if not value.isdigit():
        raise InvalidRequest([("_count", "must be a whole number")])
    return min(int(value), MAX_COUNT)


def _cursor(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) > MAX_PATIENT_ID:
        raise InvalidRequest([(name, "must be a patient id, as in the links this server gives")])
    return int(value)


def _date_span(value: str) -> tuple[date, date]:
    """The first and last day of a FHIR date: 1970, 1970-03 or 1970-03-14."""
    match = PARTIAL_DATE.fullmatch(value)
    if match is None:
        raise InvalidRequest(
            [("birthdate", f"{value!r} is not a date (YYYY, YYYY-MM, YYYY-MM-DD)")]
        )
    year, month, day = (int(part) if part else None for part in match.groups())
    try:
        if day is not None and month is not None:
            first = date(year, month, day)  # type: ignore[arg-type]
            return first, first
        if month is not None:
            last_day = calendar.monthrange(year, month)[1]  # type: ignore[arg-type]
            return date(year, month, 1), date(year, month, last_day)  # type: ignore[arg-type]
        return date(year, 1, 1), date(year, 12, 31)  # type: ignore[arg-type]
    except ValueError:
        raise InvalidRequest([("birthdate", f"{value!r} is not a date")]) from None


def birth_date_range(values: list[str]) -> dict[str, str]:
    """born_from/born_to for birthdate values with prefixes, all of which must hold."""
    low, high = date.min, date.max
    for value in values:
        prefix, rest = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
        if prefix not in PREFIXES:
            raise InvalidRequest([("birthdate", f"the prefix {prefix!r} is not supported")])
        first, last = _date_span(rest)
        if prefix in ("eq", "ge"):
            low = max(low, first)
        if prefix in ("eq", "le"):
            high = min(high, last)
        if prefix == "gt":
            low = max(low, last + timedelta(days=1))
        if prefix == "lt":
            high = min(high, first - timedelta(days=1))
    found: dict[str, str] = {}
    if low != date.min:
        found["born_from"] = low.isoformat()
    if high != date.max:
        found["born_to"] = high.isoformat()
    return found


def search_bundle(page: dict[str, Any], search: Search, base_url: str) -> dict[str, Any]:
    """The searchset Bundle of one page (fetched with one row more than the page, to see
    whether there is another)."""
    rows = page["items"]
    more = len(rows) > search.count
    items = rows[: search.count]
    if search.backwards:
        items.reverse()
    links = _links(search, base_url, items, more)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": page["total"],
        "link": links,
        "entry": [bundle_entry(item, base_url) for item in items],
    }


def bundle_entry(patient: dict[str, Any], base_url: str) -> dict[str, Any]:
    resource = patient_resource(patient, patient["id"], patient["version"], patient["updated_at"])
    return {
        "fullUrl": f"{base_url}/Patient/{patient['id']}",
        "resource": resource,
        "search": {"mode": "match"},
    }


def _links(
    search: Search, base_url: str, items: list[dict[str, Any]], more: bool
) -> list[dict[str, str]]:
    def url(*cursor: tuple[str, str]) -> str:
        query = [*search.parameters, ("_count", str(search.count)), *cursor]
        return f"{base_url}/Patient?{urlencode(query)}"

    criteria = search.criteria
    links = [{"relation": "self", "url": url(*_current_cursor(criteria))}]
    later = more if not search.backwards else True
    earlier = more if search.backwards else criteria.after is not None
    if items and later:
        links.append({"relation": "next", "url": url(("_after", str(items[-1]["id"])))})
    if items and earlier:
        links.append({"relation": "previous", "url": url(("_before", str(items[0]["id"])))})
    return links


def _current_cursor(criteria: PatientQuery) -> list[tuple[str, str]]:
    if criteria.before is not None:
        return [("_before", str(criteria.before))]
    if criteria.after is not None:
        return [("_after", str(criteria.after))]
    return []
