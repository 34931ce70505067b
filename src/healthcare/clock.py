"""The one clock of the service: UTC now, and the one way times are written out.

Code that ages things (sessions, tokens, rate limits) calls ``clock.utc_now()`` through the
module, so a test can move time by replacing it."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives back naive UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def rfc3339(moment: datetime | str) -> str:
    if isinstance(moment, str):
        # SQLite's stored text, always UTC: 'YYYY-MM-DD HH:MM:SS.ffffff'.
        return moment.replace(" ", "T", 1) + "Z"
    if moment.tzinfo is None:
        return moment.isoformat(timespec="microseconds") + "Z"
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"  # without its "+00:00"


def from_stored(value: datetime | str | None) -> datetime | None:
    """A time as a raw driver row holds it (SQLite: text; PostgreSQL: datetime), aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value)
