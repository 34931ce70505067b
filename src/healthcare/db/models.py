"""Typed table definitions. The schema itself is created by the migrations, never by create_all."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    cast,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import Select

GENDERS = ("male", "female", "other", "unknown")


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = "patients"
    # Indexes and the name-search index live in the migrations. AUTOINCREMENT on SQLite: an
    # id is never handed out twice, even after a purge.
    __table_args__ = (
        CheckConstraint("age BETWEEN 0 AND 150", name="ck_patients_age"),
        CheckConstraint(f"gender IN {GENDERS!r}", name="ck_patients_gender"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The name folded for search (lower case, no accents); the search index is built on it.
    name_search: Mapped[str] = mapped_column(String(400))
    age: Mapped[int] = mapped_column(Integer)
    disease: Mapped[str | None] = mapped_column(String(200))
    gender: Mapped[str | None] = mapped_column(String(16))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Patient identity (migration 0006): see docs/patient-identity.md.
    mrn: Mapped[str | None] = mapped_column(String(40), unique=True)
    family_name: Mapped[str | None] = mapped_column(String(200))
    given_names: Mapped[str | None] = mapped_column(String(200))
    address_lines: Mapped[str | None] = mapped_column(String(400))
    city: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(100))
    # The identifiers as JSON, read with the row; patient_identifiers is what keeps them
    # unique and finds a patient by one.
    identifiers: Mapped[str | None] = mapped_column(Text)
    merged_into: Mapped[int | None] = mapped_column(Integer)
    # Search keys, derived by the service: folded names, the phone's last nine digits.
    family_search: Mapped[str | None] = mapped_column(String(200))
    given_search: Mapped[str | None] = mapped_column(String(200))
    phone_key: Mapped[str | None] = mapped_column(String(16))
    # The phonetic block of duplicate detection (see healthcare.patients.matching).
    name_key: Mapped[str | None] = mapped_column(String(16))


patients = Patient.__table__
SEARCH_KEYS = ("name_search", "family_search", "given_search", "phone_key", "name_key")


class PatientIdentifier(Base):
    """Further identifiers of a patient (another clinic's MRN, a national number): a value is
    unique within its system, across all patients."""

    __tablename__ = "patient_identifiers"
    __table_args__ = (
        UniqueConstraint("system", "value", name="uq_patient_identifiers_system_value"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    system: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(String(200))


patient_identifiers = PatientIdentifier.__table__


class PatientVersion(Base):
    """Every version of every patient: its values as the API showed them, who and when."""

    __tablename__ = "patient_versions"

    patient_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(40))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user_id: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(64))
    values: Mapped[str] = mapped_column(Text)


patient_versions = PatientVersion.__table__


class PatientTotals(Base):
    """Rows kept by database triggers: counts, so unfiltered listings need no count, and a
    revision that changes with every change to any patient. Read them summed
    (``patient_total``): SQLite keeps one row; PostgreSQL keeps one per slot, each server
    connection writing its own, so that concurrent writers never wait on one row (migration
    0011)."""

    __tablename__ = "patient_totals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    active: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(BigInteger)


patient_totals = PatientTotals.__table__


def patient_total(column: Column[int]) -> Select[tuple[int]]:
    """A patient total (``patient_totals.c.active``, ``.deleted`` or ``.revision``) over every
    slot."""
    return select(cast(func.sum(column), BigInteger))


ROLES = ("viewer", "clinician", "admin")
# SQLite's INTEGER PRIMARY KEY is the row id itself; PostgreSQL gets a 64-bit key.
BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="ck_users_role"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set for the generated first admin: every call but the password change is refused.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)


users = User.__table__


class ApiToken(Base):
    """A bearer token: only its SHA-256 is stored (the token itself has 256 random bits, so a
    fast hash is enough; a password needs a slow one because people choose them)."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        UniqueConstraint("user_id", "label", name="uq_api_tokens_user_label"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who made it, when not its own user (an admin or an operator on the user's behalf).
    created_by: Mapped[str | None] = mapped_column(String(64))


api_tokens = ApiToken.__table__


class UserSession(Base):
    """A signed-in browser. The key is the SHA-256 of the cookie's value, so the table alone
    cannot be used to take a session over."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[str] = mapped_column(Text, default="{}")


user_sessions = UserSession.__table__


class AuditEvent(Base):
    """One row per access, append-only (database triggers refuse UPDATE and DELETE). ``hash``
    chains each row to the one before it; ids are handed out by the chain, without gaps."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user_id: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(64))
    token_label: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    patient_id: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))
    client: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[str | None] = mapped_column(String(400))
    detail: Mapped[str | None] = mapped_column(String(200))
    hash: Mapped[str] = mapped_column(String(64))
    # The API token the call came with; in the hash from the keyed era on (audit_chain).
    token_id: Mapped[int | None] = mapped_column(Integer)


audit_events = AuditEvent.__table__


class AuditDisclosure(Base):
    """Which patients a listing or search returned: one row per patient, beside the listing's
    one audit row (whose keyed hash covers their ids). Append-only, like the audit rows, and
    like them indexed by patient within eras of event ids (migration 0010)."""

    __tablename__ = "audit_disclosures"

    event_id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=False)
    patient_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


audit_disclosures = AuditDisclosure.__table__


class AuditChain(Base):
    """The head of the audit chain: the last id and hash. Writers lock this row, so rows from
    several processes join the chain one transaction at a time."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    # The first row hashed with the audit key (HMAC); rows before it are plain SHA-256.
    keyed_from: Mapped[int | None] = mapped_column(BigInteger)
    # Which key (a fingerprint, not the key): a process with another key refuses to write.
    key_id: Mapped[str | None] = mapped_column(String(16))


audit_chain = AuditChain.__table__
