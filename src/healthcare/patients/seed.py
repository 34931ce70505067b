"""Realistic synthetic patients for demos and benchmarks: names in several scripts, no real data."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, insert, update

from healthcare.db.engine import write_transaction
from healthcare.db.models import GENDERS, patient_versions, patients
from healthcare.patients.history import snapshot
from healthcare.patients.identifiers import folded, mrn_for, phone_key, split_name
from healthcare.patients.matching import name_key
from healthcare.patients.schemas import age_on
from healthcare.patients.search import fold

GIVEN = (
    "Asha Aarav Zoë José María Chloé Björn Łukasz Renée Siobhán Mohammed Fatima Wei Mei Hiroshi "
    "Yuki Olga Dmitri Amara Kwame Ngozi Priya Rahul Ana Luis Sofía Mateo Émile Inès Noah Emma "
    "Liam Olivia Ava Lucas Mia Ethan Hana Jae Min Ayşe Mehmet Nikos Eleni Søren Åsa Kalani Aroha"
).split()
FAMILY = (
    "Verma Sharma García Núñez Müller Schröder Dubois Lefèvre O'Brien Nguyễn Tanaka Suzuki Kim "
    "Park Chen Wang Ivanova Petrov Okafor Mensah Silva Santos Kowalski Nowak Andersson Jensen "
    "Papadopoulos Yılmaz Haddad Cohen Smith Johnson Brown Rossi Bianchi Novák Horváth Singh Patel"
).split()
OTHER_SCRIPTS = ("Анна Смирнова", "Γιώργος Παπαδάκης", "王小明", "محمد علي", "प्रिया शर्मा", "김민준")
DISEASES = (
    "Hypertension", "Type 2 diabetes", "Asthma", "Influenza", "Migraine", "Osteoarthritis",
    "Hypothyroidism", "Anaemia", "COPD", "Depression", "Eczema", "Gastritis", "Pneumonia",
)  # fmt: skip


def synthetic_patients(count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC)
    today = now.date()
    for _ in range(count):
        if rng.random() < 0.03:
            name = rng.choice(OTHER_SCRIPTS)
        else:
            name = f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}"
        family, given = split_name(name)
        phone = f"+1 555 {rng.randrange(10**6, 10**7)}" if rng.random() < 0.6 else None
        born = None
        if rng.random() < 0.5:
            born = date(1930, 1, 1) + timedelta(days=rng.randrange(34_000))
            born = min(born, today)
        created = now - timedelta(minutes=rng.randrange(60 * 24 * 365 * 3))
        yield {
            "name": name,
            "name_search": fold(name),
            "family_name": family,
            "given_names": given,
            "family_search": folded(family),
            "given_search": folded(given),
            "age": age_on(born, today) if born else rng.randrange(0, 100),
            "disease": rng.choice(DISEASES) if rng.random() < 0.8 else None,
            "gender": rng.choice(GENDERS),
            "date_of_birth": born,
            "phone": phone,
            "phone_key": phone_key(phone),
            "name_key": name_key(family, given),
            "identifiers": "[]",
            "email": None,
            "notes": None,
            "created_at": created,
            "updated_at": created,
            "version": 1,
        }


def seed(
    engine: Engine,
    count: int,
    *,
    batch: int = 20_000,
    random_seed: int | None = None,
    mrn_prefix: str = "MRN",
) -> int:
    """Insert ``count`` synthetic patients in batches, each with its record number and its
    first version; returns how many were written."""
    rng = random.Random(random_seed)  # noqa: S311 - synthetic demo data, not security
    rows = synthetic_patients(count, rng)
    written = 0
    while written < count:
        chunk = [next(rows) for _ in range(min(batch, count - written))]
        with write_transaction(engine) as conn:
            insert_with_identity(conn, chunk, mrn_prefix)
        written += len(chunk)
    return written


def insert_with_identity(conn: Connection, rows: list[dict[str, Any]], mrn_prefix: str) -> None:
    """Insert patient rows (their search keys filled), then their record numbers and first
    versions, as the service would have."""
    ids = conn.execute(
        insert(patients).returning(patients.c.id, sort_by_parameter_order=True), rows
    )
    for row, (patient_id,) in zip(rows, ids, strict=True):
        row.update(id=patient_id, mrn=mrn_for(patient_id, mrn_prefix))
    conn.execute(
        update(patients).where(patients.c.id == bindparam("pid")).values(mrn=bindparam("new_mrn")),
        [{"pid": row["id"], "new_mrn": row["mrn"]} for row in rows],
    )
    conn.execute(
        insert(patient_versions),
        [
            {
                "patient_id": row["id"],
                "version": 1,
                "action": "patient.create",
                "changed_at": row["created_at"],
                "username": "seed",
                "values": orjson.dumps(snapshot(row)).decode(),
            }
            for row in rows
        ],
    )
