"""The one way times are written out: RFC 3339 in UTC, always with microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from healthcare import clock


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 27, 7, 30, 0, 123456, tzinfo=UTC), "2026-11-27T07:30:00.123456Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=timezone(timedelta(hours=5, minutes=30))),
         "2026-01-01T21:34:05.000007Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-8))),
         "2026-01-02T11:04:05.000000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 1), "2026-01-02T03:04:05.000001Z"),  # stored: naive UTC
        ("2026-01-02 03:04:05.000001", "2026-01-02T03:04:05.000001Z"),  # SQLite's text
    ],
)  # fmt: skip
def test_times_are_written_in_utc_with_microseconds(moment: datetime | str, text: str) -> None:
    assert clock.rfc3339(moment) == text
