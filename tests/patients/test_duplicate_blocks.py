"""Duplicate detection looks up the candidates of many people at once (an import checks its
rows five hundred at a time). Those candidates must be exactly the ones the blocking query
gives one person at a time: on a labelled set of people on record (two deleted) and people
looking for them (variants of those on record, and strangers), every person's
candidates and likely duplicates are compared with that query, written out here as the
definition."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, func, or_, select, union

from healthcare.auth.access import Actor
from healthcare.db.database import Database
from healthcare.db.models import patient_identifiers, patients
from healthcare.patients import queries, service
from healthcare.patients.matching import Demographics, name_key, within_a_slip
from healthcare.patients.schemas import PatientIn

FAMILIES = ["Verma", "Vrema", "Okafor", "Smith", "Smyth", "Núñez", "Nunez", "Müller",
            "Mueller", "O'Brien", "García", "Garcia", "Kowalski", "Nguyễn", "Nguyen", "王",
            "Смирнова"]  # fmt: skip
GIVENS = ["Asha", "William", "Bill", "Chidi", "Zoë", "Zoe", "José", "Maria", "Élodie", "Liam",
          "Katherine", "Kate", "Asha Rani", None]  # fmt: skip
ON_RECORD = 160
OPERATOR = Actor.operator()


def _person(rng: random.Random, number: int) -> Demographics:
    email = None
    if rng.random() < 0.5:
        email = rng.choice(["asha", "ÉLODIE", "Élodie", "bill", "kate", "zoe"]) + (
            f"{rng.randrange(4)}@Example.org"
        )
    return Demographics(
        family=rng.choice(FAMILIES),
        given=rng.choice(GIVENS),
        born=rng.choice([None, date(1980, 1, 1) + timedelta(days=rng.randrange(60))]),
        phone_key=rng.choice([None, f"79460{rng.randrange(30):04d}"]),
        email=email,
        identifiers=(("urn:previous", str(number)),) if rng.random() < 0.3 else (),
    )


def _variant(rng: random.Random, person: Demographics) -> Demographics:
    """The same person entered again: another spelling, transposed names, no birth date, a
    new phone, the email in capitals."""
    return rng.choice([
        replace(person, family=person.family[:-1] + "e"),
        replace(person, family=person.given or "X", given=person.family),
        replace(person, born=None),
        replace(person, phone_key="123456789"),
        replace(person, email=(person.email or "").upper() or None),
        person,
    ])  # fmt: skip


def _patient(person: Demographics) -> PatientIn:
    fields = {
        "family_name": person.family,
        "given_names": person.given,
        "date_of_birth": person.born.isoformat() if person.born else None,
        "age": None if person.born else 40,
        "phone": person.phone_key and f"0{person.phone_key}",
        "email": person.email,
        "identifiers": [{"system": s, "value": v} for s, v in person.identifiers],
    }
    return PatientIn.model_validate({k: v for k, v in fields.items() if v is not None})


def _values(person: Demographics) -> dict[str, Any]:
    """The demographics as a client sends them (what likely_duplicates takes)."""
    return {
        "family_name": person.family,
        "given_names": person.given,
        "date_of_birth": person.born,
        "phone_key": person.phone_key,
        "email": person.email,
        "identifiers": [{"system": s, "value": v} for s, v in person.identifiers],
    }


def reference_candidates(conn: Connection, wanted: Demographics) -> list[int]:
    """The blocking query, one person at a time: patients not deleted and not merged sharing
    the birth date, the phone key, the email (lower-cased by the database), the phonetic
    name key and a birth date a slip away, or an identifier; the first MAX_BLOCK by id."""
    active = patients.c.deleted_at.is_(None)
    blocks = []
    if wanted.born is not None:
        blocks.append(patients.c.date_of_birth == wanted.born)
    if wanted.phone_key:
        blocks.append(patients.c.phone_key == wanted.phone_key)
    if wanted.email:
        blocks.append(func.lower(patients.c.email) == wanted.email)
    if name_key(wanted.family, wanted.given) and wanted.born is not None:
        slipped = patients.c.date_of_birth.in_(within_a_slip(wanted.born))
        blocks.append((patients.c.name_key == name_key(wanted.family, wanted.given)) & slipped)
    ids = [select(patients.c.id).where(active, block) for block in blocks]
    if wanted.identifiers:
        held = [
            (patient_identifiers.c.system == system) & (patient_identifiers.c.value == value)
            for system, value in wanted.identifiers
        ]
        ids.append(select(patient_identifiers.c.patient_id).where(or_(*held)))
    if not ids:
        return []
    statement = (
        select(patients.c.id)
        .where(patients.c.id.in_(union(*ids).scalar_subquery()), active)
        .where(patients.c.merged_into.is_(None))
        .order_by(patients.c.id)
        .limit(queries.MAX_BLOCK)
    )
    return list(conn.execute(statement).scalars())


@pytest.fixture
def labelled(db: Database) -> tuple[list[Demographics], dict[int, int]]:
    """People on record (two deleted), and who looks for them: a variant of each on record
    (labelled with its id) and as many strangers."""
    rng = random.Random(16)
    on_record = [_person(rng, number) for number in range(ON_RECORD)]
    new = [_patient(person) for person in on_record]
    batch = [(data, service.stored_values(data), OPERATOR.event("patient.create")) for data in new]
    stored = db.write(lambda conn: service.insert_patients(conn, batch, db.mrn_prefix))
    ids = [row["id"] for row in stored]
    for patient_id in ids[:2]:
        service.delete_patient(db, OPERATOR, patient_id)
    variants = [_variant(rng, person) for person in on_record]
    strangers = [_person(rng, ON_RECORD + n) for n in range(ON_RECORD)]
    # As the service sees them (the email lower-cased by Python, not by the database).
    looking = [Demographics.of(_values(person)) for person in variants + strangers]
    return looking, dict(enumerate(ids))


def test_candidates_of_many_people_are_each_ones_own(
    db: Database, labelled: tuple[list[Demographics], dict[int, int]]
) -> None:
    people, source_of_variant = labelled
    with db.reading() as conn:
        together = queries.duplicate_candidates(conn, people)
        alone = [reference_candidates(conn, person) for person in people]
    assert [[row["id"] for row in rows] for rows in together] == alone
    # The set exercises the blocks: most variants find their source, many people several.
    found = sum(source_of_variant[n] in alone[n] for n in range(ON_RECORD))
    assert found >= 0.8 * ON_RECORD
    assert sum(len(ids) > 3 for ids in alone) >= ON_RECORD // 2
    assert all(source_of_variant[n] not in alone[n] for n in (0, 1))  # deleted


def test_likely_duplicates_of_many_are_each_ones_own(
    db: Database, labelled: tuple[list[Demographics], dict[int, int]]
) -> None:
    people, _source = labelled
    described = [_values(person) for person in people]
    with db.reading() as conn:
        together = service.likely_duplicates_of_each(conn, described)
        alone = [service.likely_duplicates(conn, values, None) for values in described]
    assert together == alone
    assert sum(bool(found) for found in alone) >= ON_RECORD // 2


def test_a_block_larger_than_the_cap_keeps_the_lowest_ids(
    db: Database,
    labelled: tuple[list[Demographics], dict[int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(queries, "MAX_BLOCK", 2)
    people, _source = labelled
    with db.reading() as conn:
        together = queries.duplicate_candidates(conn, people)
        alone = [reference_candidates(conn, person) for person in people]
    assert [[row["id"] for row in rows] for rows in together] == alone
    assert max(len(ids) for ids in alone) == 2
