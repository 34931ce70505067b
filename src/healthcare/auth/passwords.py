"""Password rules and hashing (werkzeug's salted scrypt: N=2^15, r=8, p=1)."""

from __future__ import annotations

import gzip
import secrets
from functools import cache
from importlib import resources

from werkzeug.security import check_password_hash, generate_password_hash

MIN_LENGTH = 12
MAX_LENGTH = 256
MIN_DISTINCT_CHARACTERS = 5


@cache
def common_passwords() -> frozenset[str]:
    data = resources.files("healthcare.auth").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode().split())


def password_problem(password: str, username: str | None = None) -> str | None:
    """Why ``password`` may not be used, or None when it may."""
    if len(password) < MIN_LENGTH:
        return f"The password must have at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"The password may have at most {MAX_LENGTH} characters."
    lowered = password.lower()
    # "Password123!" is "password" with the usual suffix: refused like the word itself.
    stem = lowered.rstrip("0123456789!@#$%^&*?.,-_ ")
    if lowered in common_passwords() or stem in common_passwords():
        return "This password is on the list of commonly used passwords; choose another."
    if len(set(lowered)) < MIN_DISTINCT_CHARACTERS:
        return "The password repeats too few characters; choose a less predictable one."
    if username and username.lower() in lowered:
        return "The password may not contain the user name."
    return None


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Check a password; with no stored hash (unknown user) spend the same time and fail."""
    if stored_hash is None:
        check_password_hash(_decoy_hash(), password)
        return False
    return check_password_hash(stored_hash, password)


@cache
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def random_password() -> str:
    return secrets.token_urlsafe(18)
