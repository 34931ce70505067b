"""Pending read events: flushes by request threads that hold the request gate."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Connection

from healthcare.audit.pending import PendingAudit
from healthcare.audit.trail import Event
from healthcare.db.database import Database
from healthcare.gate import Gate
from tests.conftest import audit_rows

WAIT = 10.0


def test_two_requests_flushing_at_once_both_finish(db: Database, fresh_gate: Gate) -> None:
    """The first flush steps aside while its commit waits; the second request then holds the
    gate and waits for the first flush. The first must get the gate back when its commit ends
    (it did not, before the wait for a flush stepped aside too: both requests hung)."""
    pending = PendingAudit(db.write, delay=60.0)  # its own: a hang must not reach teardown
    writer_busy, release_writer = threading.Event(), threading.Event()

    def hold_the_writer(_conn: Connection) -> None:
        writer_busy.set()
        release_writer.wait(WAIT)

    def flushing_request(n: int) -> None:
        with fresh_gate.held():
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
    hung = second.is_alive()
    if hung:
        fresh_gate.release()  # takes the gate from the second request: both can end now
    assert not hung, "the flushing requests waited for each other"
    pending.close()
    assert {row["patient_id"] for row in audit_rows(db, action="patient.read")} == {1, 2}
