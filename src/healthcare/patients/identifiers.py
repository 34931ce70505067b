"""Medical record numbers, phone keys and the split of a display name into family and given.

Pure functions: the service, the migration and the benchmarks derive the same values.

A medical record number is the configured prefix, the patient's id zero-padded to eight
digits, and a Luhn check digit over those digits: ``MRN000001234`` + ``4``. Ids are never
handed out twice (AUTOINCREMENT on SQLite, a sequence on PostgreSQL), so neither are MRNs;
the check digit catches any single mistyped digit and most swaps of two neighbours."""

from __future__ import annotations

import re

from healthcare.patients.search import fold

MRN_DIGITS = 8
PHONE_KEY_DIGITS = 9
MRN_PATTERN = re.compile(r"([A-Z]{0,8})(\d{9,})")


def luhn_digit(digits: str) -> int:
    """The Luhn check digit to append to ``digits``."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def mrn_for(patient_id: int, prefix: str) -> str:
    digits = f"{patient_id:0{MRN_DIGITS}d}"
    return f"{prefix}{digits}{luhn_digit(digits)}"


def is_valid_mrn(mrn: str) -> bool:
    """Whether ``mrn`` has the shape of a record number and its check digit agrees."""
    match = MRN_PATTERN.fullmatch(mrn.strip().upper())
    if match is None:
        return False
    digits = match.group(2)
    return luhn_digit(digits[:-1]) == int(digits[-1])


def phone_key(phone: str | None) -> str | None:
    """The last nine digits: '+44 20 7946 0958' and '020 7946 0958' find each other."""
    if not phone:
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    return digits[-PHONE_KEY_DIGITS:] or None


def split_name(name: str) -> tuple[str, str | None]:
    """(family, given) from a display name: the last word is the family name, the words
    before it the given names. One word (or a name in a script written without spaces) is
    all family name."""
    words = name.split()
    if len(words) < 2:
        return name.strip(), None
    return words[-1], " ".join(words[:-1])


def display_name(family: str, given: str | None) -> str:
    return f"{given} {family}" if given else family


def folded(text: str | None) -> str | None:
    return fold(text).strip() if text else None
