"""Realistic synthetic patients for demos and benchmarks: names in several scripts, no real data."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from healthcare.db.engine import write_transaction
from healthcare.db.models import GENDERS, patients
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
        born = None
        if rng.random() < 0.5:
            born = date(1930, 1, 1) + timedelta(days=rng.randrange(34_000))
            born = min(born, today)
        created = now - timedelta(minutes=rng.randrange(60 * 24 * 365 * 3))
        yield {
            "name": name,
            "name_search": fold(name),
            "age": age_on(born, today) if born else rng.randrange(0, 100),
            "disease": rng.choice(DISEASES) if rng.random() < 0.8 else None,
            "gender": rng.choice(GENDERS),
            "date_of_birth": born,
            "phone": f"+1 555 {rng.randrange(10**6, 10**7)}" if rng.random() < 0.6 else None,
            "email": None,
            "notes": None,
            "created_at": created,
            "updated_at": created,
            "version": 1,
        }


def seed(engine: Engine, count: int, *, batch: int = 20_000, random_seed: int | None = None) -> int:
    """Insert ``count`` synthetic patients in batches; returns how many were written."""
    rng = random.Random(random_seed)  # noqa: S311 - synthetic demo data, not security
    rows = synthetic_patients(count, rng)
    written = 0
    while written < count:
        chunk = [next(rows) for _ in range(min(batch, count - written))]
        with write_transaction(engine) as conn:
            conn.execute(insert(patients), chunk)
        written += len(chunk)
    return written
