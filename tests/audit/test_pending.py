"""Pending read events: flushes from several request threads at once."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Connection

from healthcare.audit.pending import PendingAudit
from healthcare.audit.trail import Event
from healthcare.db.database import Database
from tests.conftest import audit_rows

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
