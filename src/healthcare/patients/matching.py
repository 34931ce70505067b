"""Who might this be? Likely duplicates of a set of demographics.

Two steps, as record-linkage systems do them:

1. *Blocking*: the database returns the few patients that share something exact with the
   demographics: the birth date, the phone key, the email, an identifier, or the phonetic
   name key (Soundex of the family name and of the first given name, in either order, so
   that transposed names meet) with a birth date one slip away. Each is an indexed lookup;
   no scan of the table. The name block needs the slipped birth date: names give at most
   2.0 points, a slipped date 1.5, together ``THRESHOLD``; with any other birth date, or
   none, a namesake reaches it only through an equal birth date, phone, email or identifier,
   each a block of its own (``tests/patients/test_duplicates.py`` checks the blocks find
   what scoring everyone who shares anything exact would).
2. *Scoring*: each candidate gets points for what agrees, field by field: names by
   Jaro-Winkler similarity (jellyfish) with nicknames counted as the same given name and
   given/family transposition tried; a birth date that is equal, or one slip away (a digit,
   day and month swapped, the year off by one); equal phone, email, identifier. A candidate
   at or over ``THRESHOLD`` is a likely duplicate.

The weights and the threshold were set with ``bench/identity_bench.py`` (a labelled
synthetic set); its figures are in docs/patient-identity.md."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import jellyfish
import orjson

from healthcare.patients.identifiers import phone_key
from healthcare.patients.search import fold

THRESHOLD = 3.5
MAX_CANDIDATES = 10

# Formal given names and the short forms people register under (English, mostly; extend as
# a clinic needs). Matching treats every name of one group as the same name.
NICKNAMES: dict[str, frozenset[str]] = {
    formal: frozenset(short.split())
    for formal, short in {
        "william": "bill billy will willy liam", "robert": "bob bobby rob robbie bert",
        "richard": "dick rick ricky rich", "james": "jim jimmy jamie", "john": "jack johnny",
        "jonathan": "jon jonny", "joseph": "joe joey", "thomas": "tom tommy",
        "charles": "charlie chuck chas", "edward": "ed eddie ted ned", "michael": "mike mick",
        "daniel": "dan danny", "david": "dave davy", "anthony": "tony", "andrew": "andy drew",
        "christopher": "chris kit", "matthew": "matt", "nicholas": "nick nicky",
        "alexander": "alex sandy", "benjamin": "ben benny", "samuel": "sam sammy",
        "steven": "steve", "stephen": "steve", "peter": "pete", "henry": "harry hank",
        "lawrence": "larry", "timothy": "tim timmy", "patrick": "pat paddy",
        "gregory": "greg", "frederick": "fred freddie", "francis": "frank",
        "elizabeth": "liz beth betty lizzie eliza", "margaret": "maggie meg peggy marge",
        "katherine": "kate kathy katie kitty", "catherine": "cathy kate", "susan": "sue susie",
        "jennifer": "jen jenny", "patricia": "pat patty trish", "deborah": "debbie deb",
        "rebecca": "becky becca", "victoria": "vicky tori", "alexandra": "alex sandra",
        "christine": "chris chrissy", "jessica": "jess jessie", "abigail": "abby",
        "dorothy": "dot dottie", "barbara": "barb babs", "theresa": "terry tess",
        "josephine": "jo josie", "eleanor": "ellie nell", "samantha": "sam",
        "sofía": "sofi", "maría": "mari", "josé": "pepe", "mohammed": "mo",
        "aleksandr": "sasha", "dmitri": "dima", "olga": "olya",
    }.items()
}  # fmt: skip
_GROUP: dict[str, str] = {}
for _formal, _shorts in NICKNAMES.items():
    for _name in (_formal, *_shorts):
        _GROUP.setdefault(fold(_name), fold(_formal))


@dataclass(frozen=True)
class Demographics:
    """What is known about a person, as matching compares it; the folded name words that
    scoring compares are worked out once, not once per candidate."""

    family: str
    given: str | None = None
    born: date | None = None
    phone_key: str | None = None
    email: str | None = None
    identifiers: tuple[tuple[str, str], ...] = ()
    folded_family: str = field(init=False, repr=False, compare=False)
    first_of_family: str = field(init=False, repr=False, compare=False)
    first_given: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        folded_family = fold(self.family) if self.family else ""
        object.__setattr__(self, "folded_family", folded_family)
        object.__setattr__(self, "first_of_family", _first_word(folded_family))
        object.__setattr__(self, "first_given", _first_word(fold(self.given or "")))

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Demographics:
        """From a stored row or an API patient (identifiers as a list of dicts)."""
        identifiers = values.get("identifiers") or []
        if isinstance(identifiers, str):  # a stored row keeps them as JSON
            identifiers = orjson.loads(identifiers)
        born = values.get("date_of_birth")
        if isinstance(born, str):
            born = date.fromisoformat(born)
        return cls(
            family=values.get("family_name") or values.get("name") or "",
            given=values.get("given_names"),
            born=born,
            phone_key=values.get("phone_key") or phone_key(values.get("phone")),
            email=(values.get("email") or "").lower() or None,
            identifiers=tuple((i["system"], i["value"]) for i in identifiers),
        )


def _letters(text: str | None) -> str:
    return "".join(ch for ch in fold(text or "") if "a" <= ch <= "z")


def name_key(family: str | None, given: str | None) -> str | None:
    """Soundex of the family name and of the first given name, in sorted order: the block
    that typos in later letters and transposed names stay inside. None for names without
    Latin letters (they block on the other fields)."""
    first = (given or "").split()[:1]
    codes = sorted(jellyfish.soundex(w) for w in (_letters(family), _letters(" ".join(first))) if w)
    return "".join(codes) if codes else None


def _first_word(folded: str) -> str:
    words = folded.split()
    return words[0] if words else ""


def _given_similarity(first_a: str, first_b: str) -> float:
    """Of two folded first given names (or a first given name and a family name's first
    word, for transposed names)."""
    if not first_a or not first_b:
        return 0.0
    if _GROUP.get(first_a, first_a) == _GROUP.get(first_b, first_b):
        return 1.0
    return jellyfish.jaro_winkler_similarity(first_a, first_b)


def _family_similarity(a: str, b: str) -> float:
    """Of two folded family names (or a family name and a first given name)."""
    if not a or not b:
        return 0.0
    return jellyfish.jaro_winkler_similarity(a, b)


def _name_points(a: Demographics, b: Demographics) -> float:
    def points(similarity: float) -> float:
        return 1.0 if similarity >= 0.9 else 0.5 if similarity >= 0.82 else 0.0

    straight = points(_family_similarity(a.folded_family, b.folded_family))
    straight += points(_given_similarity(a.first_given, b.first_given))
    swapped = points(_family_similarity(a.folded_family, b.first_given))
    swapped += points(_given_similarity(a.first_given, b.first_of_family))
    return max(straight, swapped)


def _one_slip(a: date, b: date) -> bool:
    """Equal but for one slip of the keyboard: one digit, day and month swapped, a year off."""
    if (a.year, a.day, a.month) == (b.year, b.month, b.day):
        return True
    if (a.month, a.day) == (b.month, b.day) and abs(a.year - b.year) == 1:
        return True
    text_a, text_b = a.isoformat(), b.isoformat()
    return sum(x != y for x, y in zip(text_a, text_b, strict=True)) == 1


def within_a_slip(born: date) -> list[date]:
    """``born`` and every date one slip away from it (``_one_slip``)."""
    text = born.isoformat()
    found = {born}
    for position, digit in enumerate(text):
        if digit.isdigit():
            found.update(_date(text[:position] + other + text[position + 1 :])
                         for other in "0123456789")  # fmt: skip
    found.add(_date(f"{born.year:04d}-{born.day:02d}-{born.month:02d}"))
    found.update(_date(f"{born.year + step:04d}{text[4:]}") for step in (-1, 1))
    found.discard(None)
    return sorted(found)  # type: ignore[type-var]


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _birth_points(a: date | None, b: date | None) -> float:
    if a is None or b is None:
        return 0.0
    if a == b:
        return 2.0
    return 1.5 if _one_slip(a, b) else -2.0


def score(a: Demographics, b: Demographics) -> float:
    """Points for what agrees between two people; THRESHOLD and over is a likely duplicate."""
    total = _name_points(a, b) + _birth_points(a.born, b.born)
    if a.phone_key and a.phone_key == b.phone_key:
        total += 1.5
    if a.email and a.email == b.email:
        total += 1.5
    if set(a.identifiers) & set(b.identifiers):
        total += 4.0
    return total


def reasons(a: Demographics, b: Demographics) -> list[str]:
    """What agrees, in words, for a person deciding."""
    said = []
    if _name_points(a, b) >= 1.5:
        said.append("name")
    if a.born and b.born and (a.born == b.born or _one_slip(a.born, b.born)):
        said.append("date of birth" if a.born == b.born else "date of birth (one slip away)")
    if a.phone_key and a.phone_key == b.phone_key:
        said.append("phone")
    if a.email and a.email == b.email:
        said.append("email")
    if set(a.identifiers) & set(b.identifiers):
        said.append("identifier")
    return said


def ranked(
    wanted: Demographics, candidates: Iterable[tuple[int, Demographics]]
) -> list[tuple[int, float]]:
    """The candidates that are likely duplicates of ``wanted``, best first."""
    scored = [(pid, score(wanted, other)) for pid, other in candidates]
    likely = [(pid, points) for pid, points in scored if points >= THRESHOLD]
    return sorted(likely, key=lambda item: (-item[1], item[0]))[:MAX_CANDIDATES]
