"""Validation schemas shared by the API and the web forms; the OpenAPI document comes from them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from healthcare.patients.identifiers import display_name, split_name

Gender = Literal["male", "female", "other", "unknown"]
SortKey = Literal[
    "id", "-id", "name", "-name", "age", "-age", "created_at", "-created_at",
    "updated_at", "-updated_at",
]  # fmt: skip

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
PHONE = re.compile(r"[0-9+() .\-]{3,40}")
# Unicode categories Cc and Cs (fixed by Unicode's stability policy) but newline and tab.
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def no_control_characters(value: str) -> str:
    if CONTROL_CHARACTER.search(value):
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


def optional_text(max_length: int) -> Any:
    """Trimmed text without control characters, at most ``max_length``; blank is absent."""
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, max_length=max_length),
        AfterValidator(no_control_characters),
        AfterValidator(_blank_is_none),
    ]


OptionalText = optional_text(200)
Notes = optional_text(2000)
AddressLines = optional_text(400)
ShortText = optional_text(100)
PostalCode = optional_text(20)
# The same rule as _phone, written out so that the OpenAPI document says it too.
PHONE_PATTERN = r"^[+() .\-]*(?:[0-9][+() .\-]*){3,}$"
Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=40, pattern=PHONE_PATTERN),
    AfterValidator(_phone),
]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Age = Annotated[int, Field(ge=0, le=150)]

NAME_FIELDS = ("name", "family_name", "given_names")


class Identifier(BaseModel):
    """An identifier issued by someone else: FHIR's Identifier.system and .value."""

    model_config = ConfigDict(extra="forbid", strict=True)

    system: Name = Field(
        description="Who issued it: a URI such as https://fhir.nhs.uk/Id/nhs-number, or a name."
    )
    value: Name


def _distinct_identifiers(identifiers: list[Identifier]) -> list[Identifier]:
    seen = {(i.system, i.value) for i in identifiers}
    if len(seen) != len(identifiers):
        raise ValueError("must not list the same identifier twice")
    return identifiers


Identifiers = Annotated[
    list[Identifier], Field(max_length=20), AfterValidator(_distinct_identifiers)
]


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def today_utc() -> date:
    return datetime.now(UTC).date()


def field_error(model: str, field: str, kind: str, message: str, value: Any) -> ValidationError:
    """A validation error pinned to one field, for rules that look at several fields."""
    detail = InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=value)
    return ValidationError.from_exception_data(model, [detail])


def with_name_missing(exc: ValidationError | None) -> ValidationError:
    """``exc``'s errors (if any) and a missing name, as one error."""
    details = [
        InitErrorDetails(
            type=PydanticCustomError(error["type"], error["msg"]),
            loc=error["loc"],
            input=error["input"],
        )
        for error in (exc.errors() if exc else [])
        if error["loc"] != ("name",)
    ]
    missing = PydanticCustomError("missing", "Field required unless family_name is given")
    details.insert(0, InitErrorDetails(type=missing, loc=("name",), input=None))
    return ValidationError.from_exception_data("PatientInput", details)


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

    name: Name | None = Field(
        None,
        description="The display name. Required unless family_name is given; made from "
        "given_names and family_name when absent.",
    )
    family_name: Name | None = Field(
        None, description="Taken from the last word of name when absent."
    )
    given_names: OptionalText | None = Field(
        None, description="Given names, space-separated; the words of name before the last."
    )
    age: Age | None = Field(None, description="Required unless date_of_birth is given.")
    disease: OptionalText | None = None
    gender: Gender | None = None
    date_of_birth: IsoDate | None = Field(
        None, description="Not in the future; age is derived from it."
    )
    phone: Phone | None = None
    email: EmailStr | None = None
    address_lines: AddressLines | None = Field(None, description="Street lines, one a line.")
    city: ShortText | None = None
    postal_code: PostalCode | None = None
    country: ShortText | None = None
    identifiers: Identifiers | None = Field(
        None, description="Further identifiers; a value is unique within its system."
    )
    notes: Notes | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _name_or_family_name(cls, data: Any, handler: ModelWrapValidatorHandler) -> PatientIn:
        """A name is required (as name or family_name), reported beside any other error."""
        unnamed = isinstance(data, dict) and not data.get("name") and not data.get("family_name")
        try:
            patient = handler(data)
        except ValidationError as exc:
            if not unnamed:
                raise
            raise with_name_missing(exc) from None
        if unnamed:
            raise with_name_missing(None)
        return patient

    @model_validator(mode="after")
    def _names_complete(self) -> PatientIn:
        """Either names gives the others: see docs/patient-identity.md."""
        sent = set(self.model_fields_set)
        if self.name is None:
            self.name = display_name(self.family_name or "", self.given_names)
        elif self.family_name is None:
            self.family_name, given = split_name(self.name)
            self.given_names = self.given_names or given
        # What was derived is not what the client sent (the audit row names what was sent).
        self.__pydantic_fields_set__.intersection_update(sent)
        return self

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
    family_name: Name | None = None
    given_names: OptionalText | None = None
    age: Age | None = None
    disease: OptionalText | None = None
    gender: Gender | None = None
    date_of_birth: IsoDate | None = None
    phone: Phone | None = None
    email: EmailStr | None = None
    address_lines: AddressLines | None = None
    city: ShortText | None = None
    postal_code: PostalCode | None = None
    country: ShortText | None = None
    identifiers: Identifiers | None = None
    notes: Notes | None = None


class Patient(BaseModel):
    """A patient as the API returns it."""

    id: int
    mrn: str | None = Field(description="Medical record number, assigned by the service.")
    name: str
    family_name: str | None
    given_names: str | None
    age: int
    disease: str | None
    gender: Gender | None
    date_of_birth: date | None
    phone: str | None
    email: str | None
    address_lines: str | None
    city: str | None
    postal_code: str | None
    country: str | None
    identifiers: list[Identifier]
    notes: str | None
    merged_into: int | None = Field(
        None, description="Set on a record merged into another: the survivor's id."
    )
    created_at: datetime
    updated_at: datetime
    version: int


class DuplicateCandidate(BaseModel):
    """A patient on record who is likely the same person."""

    id: int
    mrn: str | None
    name: str
    date_of_birth: date | None
    score: float = Field(description="Points for what agrees; 3.5 and over is likely.")
    reasons: list[str] = Field(description="What agrees: name, date of birth, phone, ...")
    href: str


class DuplicateCandidates(BaseModel):
    items: list[DuplicateCandidate] = Field(description="Most likely first; at most ten.")


class MatchQuery(BaseModel):
    """Demographics to look for ("who might this be?"): any of them, at least one."""

    model_config = ConfigDict(extra="forbid", strict=True, title="MatchQuery")

    name: Name | None = None
    family_name: Name | None = None
    given_names: OptionalText | None = None
    date_of_birth: IsoDate | None = None
    phone: Phone | None = None
    email: EmailStr | None = None
    identifiers: Identifiers | None = None

    @model_validator(mode="after")
    def _something_given(self) -> MatchQuery:
        if not self.model_dump(exclude_none=True):
            raise field_error("MatchQuery", "name", "missing", "Give at least one field", None)
        if self.name and not self.family_name:
            self.family_name, given = split_name(self.name)
            self.given_names = self.given_names or given
        return self


MergeableField = Literal[
    "name", "family_name", "given_names", "age", "disease", "gender", "date_of_birth", "phone",
    "email", "address_lines", "city", "postal_code", "country", "notes",
]  # fmt: skip


class MergeRequest(BaseModel):
    """Merge the source patient into this one (the survivor)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="MergeRequest")

    source_id: int = Field(ge=1, le=2**31 - 1, description="The record that is merged away.")
    source_version: int = Field(ge=1, description="The source's version (ETag) you read.")
    target_version: int = Field(ge=1, description="This record's version (ETag) you read.")
    take_from_source: list[MergeableField] = Field(
        default_factory=list,
        description="Fields whose value the survivor takes from the source (an empty value "
        "included); the others keep the survivor's. Identifiers of both are always kept.",
    )


class FieldChange(BaseModel):
    field: str
    from_: Any = Field(alias="from")
    to: Any


class PatientVersion(BaseModel):
    """One version of a patient: its values after a change, the change, who made it, when."""

    version: int
    action: str = Field(description="patient.create, patient.update, patient.delete, ...")
    changed_at: datetime
    changed_by: str | None
    values: dict[str, Any]
    changes: list[FieldChange] = Field(description="What differs from the version before.")


class PatientHistory(BaseModel):
    items: list[PatientVersion] = Field(description="Newest first.")


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
    family: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Start of the family name; case and accents ignored.",
    )
    given: str | None = Field(
        None, min_length=1, max_length=200, description="Start of the given names."
    )
    date_of_birth: IsoDate | None = Field(None, description="Born on this day.")
    born_from: IsoDate | None = Field(None, description="Born on or after this day.")
    born_to: IsoDate | None = Field(None, description="Born on or before this day.")
    phone: Phone | None = Field(
        None, description="A phone number in any format; its last nine digits must match."
    )
    identifier: str | None = Field(
        None,
        pattern=r"^[^|]{1,200}\|[^|]{1,200}$",
        description="system|value, exact: e.g. https://fhir.nhs.uk/Id/nhs-number|9434765919.",
    )
    mrn: str | None = Field(None, max_length=40, description="Medical record number, exact.")
    email: str | None = Field(None, max_length=254, description="E-mail address, any case.")
    id: int | None = Field(None, ge=0, le=2**31 - 1, description="The patient with this id.")
    after: int | None = Field(
        None, ge=0, le=2**31 - 1, description="Only patients with a greater id (keyset paging)."
    )
    before: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Only patients with a smaller id (keyset paging)."
    )
    sort: SortKey = Field("id", description="Field to sort by; a leading - sorts descending.")


MAX_PATIENT_ID = 2**31 - 1  # the id column is a 32-bit integer on PostgreSQL


class PatientPath(BaseModel):
    patient_id: int = Field(ge=1, le=MAX_PATIENT_ID)


class VersionPath(PatientPath):
    version: int = Field(ge=1, le=MAX_PATIENT_ID)


class WriteOptions(QueryModel):
    confirm_not_duplicate: bool = Field(
        False,
        description="true: create or save even though patients on record look like this one "
        "(the caller has checked that this is somebody else). Without it, a likely duplicate "
        "is refused with 409 and the candidates.",
    )
