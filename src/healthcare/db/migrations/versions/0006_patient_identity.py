"""Patient identity: record numbers, further identifiers, structured demographics, history.

Existing patients keep every value. Each gets a medical record number from its id (with the
prefix configured when the migration runs), family and given names split from its display
name (the last word is the family name), search keys, and one version row holding its values
as they stand, so that its history starts from what the service knew.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import os
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import jellyfish
import orjson
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 20_000
ACTIVE = sa.text("deleted_at IS NULL")
NEW_COLUMNS = [
    sa.Column("mrn", sa.String(40)),
    sa.Column("family_name", sa.String(200)),
    sa.Column("given_names", sa.String(200)),
    sa.Column("address_lines", sa.String(400)),
    sa.Column("city", sa.String(100)),
    sa.Column("postal_code", sa.String(20)),
    sa.Column("country", sa.String(100)),
    sa.Column("identifiers", sa.Text),
    sa.Column("merged_into", sa.Integer),
    sa.Column("family_search", sa.String(200)),
    sa.Column("given_search", sa.String(200)),
    sa.Column("phone_key", sa.String(16)),
    sa.Column("name_key", sa.String(16)),
]
# Columns of a version's values that existed before this migration; the rest start empty.
OLD_VALUES = ("name", "age", "disease", "gender", "date_of_birth", "phone", "email", "notes")
EMPTY_VALUES = dict.fromkeys(
    ("address_lines", "city", "postal_code", "country", "merged_into"), None
)


def upgrade() -> None:
    for column in NEW_COLUMNS:
        op.add_column("patients", column)
    op.create_table(
        "patient_identifiers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("system", sa.String(200), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.UniqueConstraint("system", "value", name="uq_patient_identifiers_system_value"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_patient_identifiers_patient_id", "patient_identifiers", ["patient_id"])
    op.create_table(
        "patient_versions",
        sa.Column("patient_id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer),
        sa.Column("username", sa.String(64)),
        sa.Column("values", sa.Text, nullable=False),
    )
    _fill_existing(op.get_bind(), _configured_mrn_prefix())
    _create_search_indexes(op.get_bind().dialect.name)


def _create_search_indexes(dialect: str) -> None:
    op.create_index("uq_patients_mrn", "patients", ["mrn"], unique=True)
    # Prefix search on folded names is a range scan; PostgreSQL compares bytes ("C") for it.
    family, given = (
        (sa.text('family_search COLLATE "C"'), sa.text('given_search COLLATE "C"'))
        if dialect == "postgresql"
        else ("family_search", "given_search")
    )
    for name, columns in (
        ("family", [family, given]),
        ("given", [given]),
        ("birth_date", ["date_of_birth"]),
        ("phone_key", ["phone_key"]),
        ("name_key", ["name_key"]),
        ("email", [sa.text("lower(email)")]),
    ):
        op.create_index(
            f"ix_patients_{name}_search",
            "patients",
            columns,
            sqlite_where=ACTIVE,
            postgresql_where=ACTIVE,
        )


def _batches(conn: sa.Connection) -> Iterator[list[Any]]:
    table = sa.table(
        "patients",
        *(sa.column(name) for name in ("id", *OLD_VALUES, "version", "updated_at", "deleted_at")),
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(table).where(table.c.id > last).order_by(table.c.id).limit(BATCH)
        ).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def _fill_existing(conn: sa.Connection, prefix: str) -> None:
    patients = sa.table("patients", *(sa.column(c.name) for c in NEW_COLUMNS), sa.column("id"))
    versions = sa.table(
        "patient_versions",
        *(sa.column(name) for name in ("patient_id", "version", "action", "changed_at")),
        sa.column("values"),
    )
    fill = (
        sa.update(patients)
        .where(patients.c.id == sa.bindparam("pid"))
        .values({c.name: sa.bindparam(c.name) for c in NEW_COLUMNS if c.name != "merged_into"})
    )
    for rows in _batches(conn):
        derived = [_derived(row, prefix) for row in rows]
        conn.execute(fill, derived)
        conn.execute(
            sa.insert(versions),
            [_first_version(row, d) for row, d in zip(rows, derived, strict=True)],
        )


def _derived(row: Any, prefix: str) -> dict[str, Any]:
    family, given = split_name(row.name)
    return {
        "pid": row.id,
        "mrn": mrn_for(row.id, prefix),
        "family_name": family,
        "given_names": given,
        "address_lines": None,
        "city": None,
        "postal_code": None,
        "country": None,
        "identifiers": "[]",
        "family_search": folded(family),
        "given_search": folded(given),
        "phone_key": phone_key(row.phone),
        "name_key": name_key(family, given),
    }


def _first_version(row: Any, derived: dict[str, Any]) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in OLD_VALUES}
    if values["date_of_birth"] is not None:
        values["date_of_birth"] = str(values["date_of_birth"])[:10]
    values.update(
        EMPTY_VALUES,
        mrn=derived["mrn"],
        family_name=derived["family_name"],
        given_names=derived["given_names"],
        identifiers=[],
        deleted=row.deleted_at is not None,
    )
    return {
        "patient_id": row.id,
        "version": row.version,
        "action": "patient.migrate",
        "changed_at": row.updated_at,
        "values": orjson.dumps(values).decode(),
    }


def downgrade() -> None:
    for name in ("family", "given", "birth_date", "phone_key", "name_key", "email"):
        op.drop_index(f"ix_patients_{name}_search", "patients")
    op.drop_index("uq_patients_mrn", "patients")
    op.drop_table("patient_versions")
    op.drop_index("ix_patient_identifiers_patient_id", "patient_identifiers")
    op.drop_table("patient_identifiers")
    for column in reversed(NEW_COLUMNS):
        op.drop_column("patients", column.name)


# The rules below are copied from healthcare.patients (identifiers, matching, search) as they
# were when this migration was written: a migration must give the same result whatever the
# application code becomes, and the data layer imports nothing above it.


def _configured_mrn_prefix() -> str:
    prefix = os.environ.get("HEALTHCARE_MRN_PREFIX", "MRN")
    if not re.fullmatch(r"[A-Z]{0,8}", prefix):
        raise ValueError("HEALTHCARE_MRN_PREFIX: up to 8 capital letters")
    return prefix


def _luhn_digit(digits: str) -> int:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return (10 - total % 10) % 10


def mrn_for(patient_id: int, prefix: str) -> str:
    digits = f"{patient_id:08d}"
    return f"{prefix}{digits}{_luhn_digit(digits)}"


def phone_key(phone: str | None) -> str | None:
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return digits[-9:] or None


def split_name(name: str) -> tuple[str, str | None]:
    words = name.split()
    if len(words) < 2:
        return name.strip(), None
    return words[-1], " ".join(words[:-1])


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def folded(text: str | None) -> str | None:
    return _fold(text).strip() if text else None


def _letters(text: str | None) -> str:
    return "".join(ch for ch in _fold(text or "") if "a" <= ch <= "z")


def name_key(family: str | None, given: str | None) -> str | None:
    first = (given or "").split()[:1]
    codes = sorted(jellyfish.soundex(w) for w in (_letters(family), _letters(" ".join(first))) if w)
    return "".join(codes) if codes else None
