"""Validation schemas shared by the API and the web forms; the OpenAPI document comes from them."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

Gender = Literal["male", "female", "other", "unknown"]
SortKey = Literal[
    "id", "-id", "name", "-name", "age", "-age", "created_at", "-created_at",
    "updated_at", "-updated_at",
]  # fmt: skip

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
PHONE = re.compile(r"[0-9+() .\-]{3,40}")


def no_control_characters(value: str) -> str:
    if any(unicodedata.category(ch) in {"Cc", "Cs"} for ch in value if ch not in "\n\t"):
        raise ValueError("must not contain control characters")
    return value


def _iso_date(value: Any) -> date:
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
        raise ValueError("must be a date in the form YYYY-MM-DD")
    return date.fromisoformat(value)


def _blank_is_none(value: str) -> str | None:
    return value or None


def _phone(value: str) -> str:
    if not PHONE.fullmatch(value) or sum(ch.isdigit() for ch in value) < 3:
        raise ValueError("must be a phone number: digits, spaces and + ( ) . - only")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(no_control_characters),
]
OptionalText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=200),
    AfterValidator(no_control_characters),
    AfterValidator(_blank_is_none),
]
Notes = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=2000),
    AfterValidator(no_control_characters),
    AfterValidator(_blank_is_none),
]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=40), AfterValidator(_phone)
]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Age = Annotated[int, Field(ge=0, le=150)]


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def today_utc() -> date:
    return datetime.now(UTC).date()


def field_error(model: str, field: str, kind: str, message: str, value: Any) -> ValidationError:
    """A validation error pinned to one field, for rules that look at several fields."""
    detail = InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=value)
    return ValidationError.from_exception_data(model, [detail])


AGE_GIVEN = {"required": ["age"], "properties": {"age": {"type": "integer"}}}
BIRTH_DATE_GIVEN = {
    "required": ["date_of_birth"],
    "properties": {"date_of_birth": {"type": "string"}},
}


class PatientIn(BaseModel):
    """The client-writable fields of a patient (POST and PUT bodies)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        title="PatientInput",
        json_schema_extra={"anyOf": [AGE_GIVEN, BIRTH_DATE_GIVEN]},
    )

    name: Name
    age: Age | None = Field(None, description="Required unless date_of_birth is given.")
    disease: OptionalText | None = None
    gender: Gender | None = None
    date_of_birth: IsoDate | None = Field(
        None, description="Not in the future; age is derived from it."
    )
    phone: Phone | None = None
    email: EmailStr | None = None
    notes: Notes | None = None

    @model_validator(mode="after")
    def _age_agrees_with_birth_date(self) -> PatientIn:
        born, title = self.date_of_birth, "PatientInput"
        if born is None:
            if self.age is None:
                message = "Field required unless date_of_birth is given"
                raise field_error(title, "age", "missing", message, None)
            return self
        today = today_utc()
        if born > today:
            message = "Must not be in the future"
            raise field_error(title, "date_of_birth", "date_future", message, str(born))
        derived = age_on(born, today)
        if derived > 150:
            message = "Gives an age over 150"
            raise field_error(title, "date_of_birth", "age_range", message, str(born))
        if self.age is not None and self.age != derived:
            message = f"Does not match date_of_birth, which gives {derived}"
            raise field_error(title, "age", "age_mismatch", message, self.age)
        self.age = derived
        return self


class PatientPatch(BaseModel):
    """A JSON merge patch (RFC 7396): fields present are replaced, null removes an optional one."""

    model_config = ConfigDict(extra="forbid", strict=True, title="PatientMergePatch")

    name: Name | None = None
    age: Age | None = None
    disease: OptionalText | None = None
    gender: Gender | None = None
    date_of_birth: IsoDate | None = None
    phone: Phone | None = None
    email: EmailStr | None = None
    notes: Notes | None = None


class Patient(BaseModel):
    """A patient as the API returns it."""

    id: int
    name: str
    age: int
    disease: str | None
    gender: Gender | None
    date_of_birth: date | None
    phone: str | None
    email: str | None
    notes: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class DeletedPatient(Patient):
    deleted_at: datetime


class PatientPage(BaseModel):
    items: list[Patient]
    total: int
    limit: int
    offset: int


class DeletedPatientPage(BaseModel):
    items: list[DeletedPatient]
    total: int
    limit: int
    offset: int


_REQUEST_SCHEMAS: dict[type[BaseModel], dict[str, Any]] = {}


class QueryModel(BaseModel):
    """A query-string model. flask-openapi3 asks for its JSON schema on every request to see
    which fields are lists; the schema never changes, so it is built once."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if args or kwargs:
            return super().model_json_schema(*args, **kwargs)
        if cls not in _REQUEST_SCHEMAS:
            _REQUEST_SCHEMAS[cls] = super().model_json_schema()
        return _REQUEST_SCHEMAS[cls]


class PageQuery(QueryModel):
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)


class PatientQuery(PageQuery):
    q: str | None = Field(
        None, max_length=200, description="Start of any word of the name; case and accents ignored."
    )
    disease: str | None = Field(None, max_length=200, description="Exact disease, any case.")
    gender: Gender | None = None
    sort: SortKey = Field("id", description="Field to sort by; a leading - sorts descending.")


MAX_PATIENT_ID = 2**31 - 1  # the id column is a 32-bit integer on PostgreSQL


class PatientPath(BaseModel):
    patient_id: int = Field(ge=1, le=MAX_PATIENT_ID)
