"""Refusals of callers who are nobody yet, recorded in bounded number (issue 13, item 8).

Every unauthenticated request used to add a permanent audit row, with a path of the caller's
choosing: anyone could grow the trail without limit. Each process now records at most
``per_window`` anonymous refusals per window singly; the rest are counted, and the count goes
with the first row of the next window. Refusals of signed-in users are not affected."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta


class AnonymousDenials:
    def __init__(self, per_window: int = 10, window: timedelta = timedelta(minutes=1)) -> None:
        self.per_window = per_window
        self.window = window
        self._lock = threading.Lock()
        self._started: datetime | None = None
        self._recorded = 0
        self._folded = 0

    def admit(self, now: datetime) -> int | None:
        """None: count this refusal without a row. Otherwise record it, with the returned
        number of refusals of the previous window that were only counted."""
        with self._lock:
            carried = 0
            if self._started is None or now - self._started >= self.window:
                carried, self._started, self._recorded, self._folded = self._folded, now, 0, 0
            if self._recorded >= self.per_window:
                self._folded += 1
                return None
            self._recorded += 1
            return carried
