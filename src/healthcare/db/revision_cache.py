"""Read results kept in memory: while the data they came from is unchanged, or briefly.

The database bumps a revision in the same transaction as every change (a trigger), so an entry
stored under revision R is served only to a reader who has just read R: never stale."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

MISSING = object()


class RevisionCache:
    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, revision: int) -> Any:
        """The value stored for ``key`` at ``revision``, or MISSING."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != revision:
                return MISSING
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, revision: int, value: Any) -> None:
        with self._lock:
            self._entries[key] = (revision, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


class ShortLivedCache:
    """Values kept for ``ttl`` seconds at most (by the monotonic clock), for reads that may lag
    the database by that much; ``clear`` drops everything at once."""

    def __init__(self, ttl: float, capacity: int = 4096) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable) -> Any:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] >= self.ttl:
            return MISSING
        return entry[1]

    def put(self, key: Hashable, value: Any) -> None:
        if len(self._entries) >= self.capacity:
            self._entries.clear()  # a flood of distinct keys: start again rather than grow
        self._entries[key] = (time.monotonic(), value)

    def clear(self) -> None:
        self._entries.clear()
