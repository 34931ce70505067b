"""Signed checkpoints of the audit chain's head, kept outside the database.

A checkpoint is one JSON line: the chain's last id and hash, where its keyed era begins, and
an HMAC of all that under the audit key. They are appended to a sink that the database's
users cannot rewrite: by default a file opened append-only (on a volume of its own in
compose); the interface is two methods, so a write-once store (S3 Object Lock, CloudWatch
Logs) can take its place (docs/audit-threat-model.md). ``audit verify`` holds the trail to
every checkpoint: a row that no longer has the hash a checkpoint saw was re-hashed, and a
trail that ends before the last checkpoint lost its tail.

A forced restore of an older backup appends a ``rewind`` line: checkpoints before it no
longer bind rows after the restored head, and ``audit verify`` lists every rewind."""

from __future__ import annotations

import atexit
import hashlib
import hmac
import logging
import multiprocessing.util
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from healthcare import clock
from healthcare.db.models import audit_chain

log = logging.getLogger("healthcare.audit")
HEAD = "head"
REWIND = "rewind"


class CheckpointError(RuntimeError):
    """A checkpoint line that is not what this service signed."""


@dataclass(frozen=True)
class Checkpoint:
    kind: str
    at: str
    last_id: int
    last_hash: str
    keyed_from: int | None

    def signed(self, key: bytes) -> bytes:
        body = asdict(self)
        return orjson.dumps({**body, "mac": _mac(key, body)}, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def parse(cls, line: bytes, key: bytes, number: int) -> Checkpoint:
        try:
            data = orjson.loads(line)
            mac = data.pop("mac")
            checkpoint = cls(**data)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise CheckpointError(f"checkpoint line {number} is not a checkpoint") from None
        if not hmac.compare_digest(str(mac), _mac(key, asdict(checkpoint))):
            raise CheckpointError(
                f"checkpoint line {number} is not signed with this audit key (forged, or "
                "another key)"
            )
        return checkpoint


def _mac(key: bytes, body: dict[str, object]) -> str:
    message = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hmac.new(key, b"checkpoint:" + message, hashlib.sha256).hexdigest()


class CheckpointSink(Protocol):
    """Where checkpoints go: appended to, never rewritten, read back whole."""

    def append(self, line: bytes) -> None: ...
    def lines(self) -> Iterator[bytes]: ...


class AppendOnlyFile:
    """Checkpoints as lines of a local file, opened with O_APPEND (mode 0600) and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line + b"\n")  # one write of one line: lines never interleave
            os.fsync(fd)
        finally:
            os.close(fd)

    def lines(self) -> Iterator[bytes]:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    yield line.rstrip(b"\n")


def read_checkpoints(sink: CheckpointSink, key: bytes) -> list[Checkpoint]:
    """Every checkpoint, in the order written; CheckpointError on a line not signed by us."""
    return [Checkpoint.parse(line, key, n) for n, line in enumerate(sink.lines(), start=1)]


@dataclass(frozen=True)
class Expectations:
    """What the checkpoints say the trail must hold: the hash of each checkpointed row (the
    newest checkpoint of each id wins), the keyed era's start, and the forced restores."""

    hashes: dict[int, tuple[str, str]]
    keyed_from: int | None
    rewinds: tuple[Checkpoint, ...]

    @property
    def last_id(self) -> int:
        return max(self.hashes, default=0)


def expectations(checkpoints: Sequence[Checkpoint]) -> Expectations:
    """The keyed era begins once: the first checkpoint that saw it fixes where, until a forced
    restore (a rewind) brings back a trail that may have begun it elsewhere."""
    hashes: dict[int, tuple[str, str]] = {}
    keyed_from, rewinds = None, []
    for checkpoint in checkpoints:
        if checkpoint.kind == REWIND:
            hashes = {i: seen for i, seen in hashes.items() if i <= checkpoint.last_id}
            keyed_from = None
            rewinds.append(checkpoint)
        if checkpoint.last_id:
            hashes[checkpoint.last_id] = (checkpoint.last_hash, checkpoint.at)
        if keyed_from is None:
            keyed_from = checkpoint.keyed_from
    return Expectations(hashes, keyed_from, tuple(rewinds))


def chain_head(engine: Engine) -> tuple[int, str, int | None]:
    head = select(audit_chain.c.last_id, audit_chain.c.last_hash, audit_chain.c.keyed_from)
    with engine.connect() as conn:
        last_id, last_hash, keyed_from = conn.execute(head).one()
    return last_id, last_hash, keyed_from


class Checkpointer:
    """Writes the chain head to the sink: when asked, every ``interval`` seconds once started,
    and when the process ends. A head already written is not written again."""

    def __init__(
        self, engine: Engine, sink: CheckpointSink, key: bytes, interval: float = 60.0
    ) -> None:
        self.engine, self.sink, self.key, self.interval = engine, sink, key, interval
        self._written: tuple[int, str] | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def write(self, kind: str = HEAD) -> Checkpoint | None:
        """Checkpoint the current head (a rewind always; a head only when it moved)."""
        with self._lock:
            last_id, last_hash, keyed_from = chain_head(self.engine)
            if kind == HEAD and (self._written == (last_id, last_hash) or last_id == 0):
                return None
            checkpoint = Checkpoint(
                kind, clock.rfc3339(clock.utc_now()), last_id, last_hash, keyed_from
            )
            self.sink.append(checkpoint.signed(self.key))
            self._written = (last_id, last_hash)
            return checkpoint

    def write_quietly(self) -> None:
        """A checkpoint if the database answers; a failure is logged, never raised."""
        try:
            self.write()
        except (SQLAlchemyError, OSError):
            log.exception("audit checkpoint not written")

    def start(self) -> None:
        """In a server worker: checkpoint every ``interval`` seconds, and once more at exit
        (after the pending audit events, whose finalizer runs first)."""
        threading.Thread(target=self._every_interval, name="audit-checkpoint", daemon=True).start()
        atexit.register(self.stop)
        multiprocessing.util.Finalize(self, self.stop, exitpriority=10)

    def stop(self) -> None:
        """The last checkpoint of this process (once, however often it is called)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.write_quietly()

    def _every_interval(self) -> None:
        while not self._stopped.wait(self.interval):
            self.write_quietly()
