"""Synthetic people for the identity benchmarks: a long tail of family names (Zipf-like, as in
a real registry, where the commonest surname is under 1% of people), given names with their
nicknames, birth dates, phones and emails. No real data."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate, product
from typing import Any

from sqlalchemy import Engine

from healthcare.db.engine import write_transaction
from healthcare.patients.identifiers import folded, phone_key
from healthcare.patients.matching import NICKNAMES, name_key
from healthcare.patients.search import fold
from healthcare.patients.seed import insert_with_identity

ONSETS = "b br c ch d f g gr h j k l m n p r s sh st t v w z".split()
VOWELS = "a e i o u ai ea ou".split()
CODAS = "n r s l m t nd rs ck ng".split()
REAL_GIVEN = (
    "Asha Aarav Zoë José María Chloé Björn Łukasz Renée Siobhán Mohammed Fatima Wei Mei Hiroshi "
    "Yuki Olga Dmitri Amara Kwame Ngozi Priya Rahul Ana Luis Sofía Mateo Émile Inès Noah Emma "
    "Liam Olivia Ava Lucas Mia Ethan Hana Jae Min Ayşe Mehmet Nikos Eleni Søren Åsa Kalani Aroha"
).split()


def _made_up_names(count: int, rng: random.Random) -> list[str]:
    stems = ["".join(p) for p in product(ONSETS, VOWELS, CODAS)]
    rng.shuffle(stems)
    names = {
        (a + b.lower() if rng.random() < 0.6 else a).capitalize()
        for a, b in zip(stems, stems[1:] + stems[:1], strict=True)
    }
    return sorted(names)[:count]


@dataclass(frozen=True)
class Person:
    given: str
    family: str
    born: date | None
    phone: str | None
    email: str | None
    gender: str


class People:
    """A generator of people; the same seed gives the same people."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.family = _made_up_names(5_000, self.rng)
        weights = [1 / (rank + 10) ** 0.9 for rank in range(len(self.family))]
        self.family_weights = list(accumulate(weights))
        nicknamed = sorted({formal.capitalize() for formal in NICKNAMES})
        self.given = sorted(set(REAL_GIVEN + nicknamed + _made_up_names(800, self.rng)))

    def person(self) -> Person:
        rng = self.rng
        given = rng.choice(self.given)
        if rng.random() < 0.3:
            given = f"{given} {rng.choice(self.given)}"
        family = rng.choices(self.family, cum_weights=self.family_weights)[0]
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(34_000))
        phone = f"07{rng.randrange(10**8, 10**9)}" if rng.random() < 0.85 else None
        email = None
        if rng.random() < 0.5:
            email = f"{fold(given.split()[0])}.{fold(family)}{rng.randrange(100)}@example.org"
        gender = rng.choice(("male", "female", "other", "unknown"))
        return Person(given, family, born, phone, email, gender)

    def variant(self, person: Person) -> tuple[Person, str]:
        """The same person as entered again by someone else: one or two mistakes."""
        rng = self.rng
        kind = rng.choice(
            ["typo", "transposed", "nickname", "no_birth_date", "birth_date_typo", "new_phone"]
        )
        changed = _change(person, kind, rng)
        if rng.random() < 0.3:  # and sometimes a second difference
            second = rng.choice(["new_phone", "typo", "no_email"])
            changed = _change(changed, second, rng)
        return changed, kind


def _typo(text: str, rng: random.Random) -> str:
    if len(text) < 3:
        return text + "e"
    at = rng.randrange(1, len(text) - 1)
    letter = rng.choice("abcdefghijklmnoprstuvy")
    how = rng.choice(("swap", "drop", "replace", "insert"))
    if how == "swap":
        return text[: at - 1] + text[at] + text[at - 1] + text[at + 1 :]
    if how == "drop":
        return text[:at] + text[at + 1 :]
    if how == "replace":
        return text[:at] + letter + text[at + 1 :]
    return text[:at] + letter + text[at:]


def _change(person: Person, kind: str, rng: random.Random) -> Person:
    if kind == "typo":
        if rng.random() < 0.5:
            return replace(person, family=_typo(person.family, rng))
        return replace(person, given=_typo(person.given, rng))
    if kind == "transposed":
        return replace(person, given=person.family, family=person.given.split()[0])
    if kind == "nickname":
        first, *rest = person.given.split()
        nicks = NICKNAMES.get(first.lower())
        if not nicks:
            return replace(person, given=_typo(person.given, rng))
        return replace(person, given=" ".join([sorted(nicks)[0].capitalize(), *rest]))
    if kind == "no_birth_date":
        return replace(person, born=None)
    if kind == "birth_date_typo" and person.born:
        born = person.born
        options = [born.replace(day=min(born.day % 28 + 1, 28)), born.replace(year=born.year + 1)]
        if born.day <= 12:
            options.append(born.replace(month=born.day, day=born.month))
        return replace(person, born=rng.choice(options))
    if kind == "new_phone":
        return replace(person, phone=f"07{rng.randrange(10**8, 10**9)}")
    if kind == "no_email":
        return replace(person, email=None)
    return person


def stored_row(person: Person, now: datetime | None = None) -> dict[str, Any]:
    """A patients-table row for ``person``, search keys filled as the service fills them."""
    now = now or datetime.now(UTC)
    name = f"{person.given} {person.family}"
    today = now.date()
    age = today.year - person.born.year if person.born else 40
    return {
        "name": name,
        "name_search": fold(name),
        "family_name": person.family,
        "given_names": person.given,
        "family_search": folded(person.family),
        "given_search": folded(person.given),
        "age": max(0, min(age, 150)),
        "disease": None,
        "gender": person.gender,
        "date_of_birth": person.born,
        "phone": person.phone,
        "phone_key": phone_key(person.phone),
        "name_key": name_key(person.family, person.given),
        "email": person.email,
        "identifiers": "[]",
        "notes": None,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }


def insert_people(engine: Engine, count: int, seed: int, batch_size: int = 20_000) -> None:
    """``count`` people of ``People(seed)`` stored as the service would, a batch at a time."""
    people = People(seed)
    done = 0
    while done < count:
        batch = [stored_row(people.person()) for _ in range(min(batch_size, count - done))]
        with write_transaction(engine) as conn:
            insert_with_identity(conn, batch, "MRN")
        done += len(batch)
