"""Turning submitted forms into the shared schemas, and their errors into words per field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from healthcare.patients.schemas import PatientIn

PATIENT_FIELDS = (
    "name", "family_name", "given_names", "age", "date_of_birth", "gender", "disease", "phone",
    "email", "address_lines", "city", "postal_code", "country", "notes",
)  # fmt: skip
WHOLE_NUMBER = re.compile(r"\d{1,6}")
FRIENDLY = {
    ("name", "missing"): "Enter the patient's name.",
    ("name", "string_too_short"): "Enter the patient's name.",
    ("age", "missing"): "Enter the age, or a date of birth.",
    ("age", "int_type"): "Enter the age as a whole number, such as 42.",
    ("age", "greater_than_equal"): "Enter an age from 0 to 150.",
    ("age", "less_than_equal"): "Enter an age from 0 to 150.",
    ("email", "value_error"): "Enter an email address like name@example.org.",
}


def submitted(form: Mapping[str, str], fields: tuple[str, ...]) -> dict[str, str]:
    """The fields as typed (trimmed), to show again if the submission fails."""
    return {name: form.get(name, "").strip() for name in fields}


def field_messages(exc: ValidationError) -> dict[str, str]:
    """One message per field, worded for a person at a form."""
    messages: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else "form"
        message = FRIENDLY.get((field, error["type"]), error["msg"].removeprefix("Value error, "))
        message = message[:1].upper() + message[1:]
        messages.setdefault(field, message if message.endswith(".") else message + ".")
    return messages


def validated(model: type[BaseModel], data: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        return None, field_messages(exc)


def patient_from_form(values: Mapping[str, str]) -> tuple[PatientIn | None, dict[str, str]]:
    """A blank field is an absent one; an age of digits is a number (the schema is strict)."""
    data: dict[str, Any] = {name: value for name, value in values.items() if value}
    if WHOLE_NUMBER.fullmatch(data.get("age", "")):
        data["age"] = int(data["age"])
    return validated(PatientIn, data)


def patient_as_form(patient: Mapping[str, Any]) -> dict[str, str]:
    values = {name: patient.get(name) for name in PATIENT_FIELDS}
    if values["date_of_birth"]:
        values["age"] = None  # derived from the birth date
    return {name: "" if value is None else str(value) for name, value in values.items()}
