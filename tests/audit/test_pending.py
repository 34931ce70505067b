"""Pending read events: flushes from several request threads at once."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from healthcare.audit.pending import HIGH_WATER, PendingAudit
from healthcare.audit.trail import Event
from healthcare.db.database import Database
from healthcare.errors import AuditBacklog
from tests.conftest import audit_rows, new_patient

WAIT = 10.0


def test_two_requests_flushing_at_once_both_finish(db: Database) -> None:
    """The second request's flush waits for the first one's, whose commit waits for the
    writer: both end once the writer is free, and both events are written."""
    pending = PendingAudit(db.write, delay=60.0)  # its own: a hang must not reach teardown
    writer_busy, release_writer = threading.Event(), threading.Event()

    def hold_the_writer(_conn: Connection) -> None:
        writer_busy.set()
        release_writer.wait(WAIT)

    def flushing_request(n: int) -> None:
        pending.add(Event("patient.read", patient_id=n))
        pending.flush()

    blocker = threading.Thread(target=db.write, args=(hold_the_writer,), daemon=True)
    blocker.start()
    assert writer_busy.wait(WAIT)
    first = threading.Thread(target=flushing_request, args=(1,), daemon=True)
    first.start()
    deadline = time.monotonic() + WAIT
    while db._writer._queue.qsize() < 1:  # the first request's flush waits for the writer
        assert time.monotonic() < deadline
        time.sleep(0.001)
    second = threading.Thread(target=flushing_request, args=(2,), daemon=True)
    second.start()
    time.sleep(0.1)  # the second request reaches the flush while the first one's is open
    release_writer.set()
    for thread in (blocker, first, second):
        thread.join(WAIT)
    assert not second.is_alive(), "the flushing requests waited for each other"
    pending.close()
    assert {row["patient_id"] for row in audit_rows(db, action="patient.read")} == {1, 2}


class StuckWriter:
    """A write path that fails until told otherwise, as when another process holds the lock."""

    def __init__(self) -> None:
        self.working = False
        self.written: list[int] = []

    def __call__(self, work: Any) -> None:
        if not self.working:
            raise OperationalError("BEGIN", {}, Exception("database is locked"))
        self.written.append(1)


def test_reads_are_refused_once_too_many_events_wait() -> None:
    writer = StuckWriter()
    pending = PendingAudit(writer, delay=60.0, max_events=3, max_age=60.0)
    for n in range(3):
        pending.add(Event("patient.read", patient_id=n))
    with pytest.raises(AuditBacklog):
        pending.add(Event("patient.read", patient_id=3))
    assert pending.flush() == 0  # still stuck: kept, and still counted
    with pytest.raises(AuditBacklog):
        pending.add(Event("patient.read", patient_id=3))
    writer.working = True
    assert pending.flush() == 3
    pending.add(Event("patient.read", patient_id=3))  # caught up: answered again
    pending.close()


def test_reads_are_refused_once_events_wait_too_long() -> None:
    writer = StuckWriter()
    pending = PendingAudit(writer, delay=60.0, max_events=1000, max_age=0.05)
    pending.add(Event("patient.read", patient_id=1))
    time.sleep(0.06)  # past the age bound with nothing written
    with pytest.raises(AuditBacklog):
        pending.add(Event("patient.read", patient_id=2))
    writer.working = True
    assert pending.flush() == 1
    pending.add(Event("patient.read", patient_id=2))
    pending.close()


def test_events_taken_by_a_write_still_count_until_it_commits() -> None:
    pending = PendingAudit(StuckWriter(), delay=60.0, max_events=2, max_age=60.0)
    pending.add(Event("patient.read", patient_id=1))
    pending.add(Event("patient.read", patient_id=2))
    taken = pending.take()  # a change's transaction carries them
    with pytest.raises(AuditBacklog):
        pending.add(Event("patient.read", patient_id=3))
    pending.written(taken)
    pending.add(Event("patient.read", patient_id=3))
    pending.take()


@contextmanager
def audit_chain_locked(engine: Engine) -> Iterator[None]:
    """Another process's transaction holds what an audit write needs."""
    if engine.dialect.name == "sqlite":
        other = sqlite3.connect(engine.url.database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("COMMIT")
            other.close()
        return
    with engine.connect() as conn, conn.begin():
        conn.execute(text("LOCK TABLE audit_chain IN EXCLUSIVE MODE"))
        yield


def _until_status(client: FlaskClient, path: str, status: int) -> list[int]:
    seen: list[int] = []
    deadline = time.monotonic() + WAIT
    while not seen or seen[-1] != status:
        assert time.monotonic() < deadline, seen[-5:]
        seen.append(client.get(path).status_code)
        time.sleep(0.01)
    return seen


def test_reads_answer_503_while_the_audit_cannot_be_written(
    client: FlaskClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db.pending_audit, "max_age", 0.3)
    path = f"/patients/{new_patient(client)['id']}"
    with audit_chain_locked(db.engine):
        seen = _until_status(client, path, 503)
        refused = client.get(path)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
    _until_status(client, path, 200)  # the audit caught up
    answered = seen.count(200) + 1
    assert len(audit_rows(db, action="patient.read")) == answered


def test_reads_wait_for_the_flush_rather_than_pile_up_past_the_high_water_mark() -> None:
    """Backpressure: with a slow audit write, reads from several threads never have more
    than HIGH_WATER events waiting (each thread may add one past it), and none is refused."""
    depths: list[int] = []

    def slow_write(work: Any) -> None:
        time.sleep(0.02)  # a large flush taking its time to commit

    pending = PendingAudit(slow_write, delay=0.01, max_events=100_000, max_age=30.0)
    refused: list[AuditBacklog] = []

    def reader(first: int) -> None:
        for n in range(first, first + 1_500):
            try:
                pending.add(Event("patient.read", patient_id=n))
            except AuditBacklog as exc:
                refused.append(exc)
            depths.append(len(pending._events) + pending._in_flight)

    threads = [threading.Thread(target=reader, args=(k * 10_000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    pending.close()
    assert not refused
    assert max(depths) <= HIGH_WATER + len(threads)


def test_a_read_on_the_event_loop_is_never_held_back_by_the_backpressure() -> None:
    """The server sends reads to its threads while flooded; one that still reaches the event
    loop must not stop it waiting for a flush (here one that never comes)."""
    writer = StuckWriter()
    pending = PendingAudit(writer, delay=60.0, max_events=100_000, max_age=30.0)
    for n in range(HIGH_WATER):
        pending.add(Event("patient.read", patient_id=n))
    assert pending.flooded()

    async def read_on_the_loop() -> float:
        started = time.monotonic()
        pending.add(Event("patient.read", patient_id=HIGH_WATER))
        return time.monotonic() - started

    assert asyncio.run(read_on_the_loop()) < 5.0
    writer.working = True  # let the events go, so that nothing is left to flush at exit
    pending.close()
