"""Migration 0006: existing patients keep every value and gain identity fields and history."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import insert, select

from healthcare.db import migrate
from healthcare.db.engine import create_db_engine
from healthcare.db.models import patient_versions, patients
from healthcare.patients.identifiers import mrn_for
from tests.conftest import fresh_postgres_database, postgres_server_url

BEFORE = [
    {"name": "Asha Verma", "phone": "+44 20 7946 0958", "date_of_birth": date(1990, 1, 2)},
    {"name": "王小明", "phone": None, "date_of_birth": None},
]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_existing_patients_are_migrated_without_loss(tmp_path: Path, backend: str) -> None:
    url = (
        f"sqlite:///{tmp_path / 'identity.db'}"
        if backend == "sqlite"
        else fresh_postgres_database(postgres_server_url(), "identity")
    )
    engine = create_db_engine(url)
    try:
        migrate.upgrade(engine, "0003")
        now = datetime.now(UTC)
        rows = [
            {**row, "name_search": row["name"].lower(), "age": 30, "created_at": now,
             "updated_at": now, "version": 3, "deleted_at": now if i else None}
            for i, row in enumerate(BEFORE)
        ]  # fmt: skip
        with engine.begin() as conn:
            conn.execute(insert(patients), rows)  # the columns of 0003 only
        migrate.upgrade(engine)
        with engine.connect() as conn:
            migrated = conn.execute(select(patients).order_by(patients.c.id)).mappings().all()
            versions = conn.execute(select(patient_versions)).mappings().all()
    finally:
        engine.dispose()
    first, second = migrated
    assert (first["mrn"], second["mrn"]) == (mrn_for(1, "MRN"), mrn_for(2, "MRN"))
    assert (first["family_name"], first["given_names"]) == ("Verma", "Asha")
    assert (second["family_name"], second["given_names"]) == ("王小明", None)
    assert first["phone_key"] == "079460958"
    assert first["date_of_birth"] == date(1990, 1, 2)
    assert first["version"] == 3
    assert first["identifiers"] == "[]"
    assert [(v["patient_id"], v["version"], v["action"]) for v in versions] == [
        (1, 3, "patient.migrate"), (2, 3, "patient.migrate"),
    ]  # fmt: skip
    kept = orjson.loads(versions[1]["values"])
    assert kept["name"] == "王小明"
    assert kept["deleted"] is True
