"""The keyed audit chain and its checkpoints (issue 13, item 1): someone who can write to the
database, but has neither the audit key nor the checkpoints, cannot take rows out unseen."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from sqlalchemy import Connection, Engine, select, text

from healthcare.audit import trail
from healthcare.audit.checkpoints import (
    AppendOnlyFile,
    Checkpointer,
    CheckpointError,
    expectations,
    read_checkpoints,
)
from healthcare.audit.keys import audit_key
from healthcare.cli import main
from healthcare.config import ConfigError, Settings
from healthcare.db.database import Database
from healthcare.db.models import audit_chain, audit_events, patients
from tests.conftest import audit_guard_lifted, audit_rows, new_patient, wait_until


@pytest.fixture
def checkpointer(app: OpenAPI) -> Checkpointer:
    return app.extensions["healthcare.checkpoints"]


def _checked(db: Database, checkpointer: Checkpointer) -> trail.ChainReport:
    expected = expectations(read_checkpoints(checkpointer.sink, checkpointer.key))
    return trail.verify(db.engine, expected)


def _a_day_of_reads(client_as: Callable[[str], FlaskClient], db: Database) -> int:
    clinician, viewer = client_as("clinician"), client_as("viewer")
    pid = new_patient(clinician, name="Kept Secret")["id"]
    viewer.get(f"/patients/{pid}")
    viewer.get(f"/patients/{pid}")
    clinician.patch(f"/patients/{pid}", json={"age": 40})
    db.pending_audit.flush()
    return pid


def _rewrite_without(engine: Engine, action: str, *, keep_keyed_era: bool = False) -> None:
    """The attack of the review: with the guards lifted, take out every ``action`` row, number
    and hash the rest again with the project's own ``row_hash`` (without the audit key, which
    is not in the database), and move the chain head to match."""
    with engine.connect() as conn:
        kept = [
            dict(row)
            for row in conn.execute(select(audit_events).order_by(audit_events.c.id)).mappings()
            if row["action"] != action
        ]
        keyed_from = conn.execute(select(audit_chain.c.keyed_from)).scalar()
    with audit_guard_lifted(engine) as conn:
        conn.execute(text("DELETE FROM audit_events"))
        previous = trail.GENESIS_HASH
        for new_id, row in enumerate(kept, start=1):
            row["id"] = new_id
            row["hash"] = previous = trail.row_hash(previous, new_id, trail.stored_values(row))
            conn.execute(audit_events.insert().values(row))
        _move_head(conn, len(kept), previous, keyed_from if keep_keyed_era else None)


def _move_head(conn: Connection, last_id: int, last_hash: str, keyed_from: int | None) -> None:
    conn.execute(
        audit_chain.update().values(last_id=last_id, last_hash=last_hash, keyed_from=keyed_from)
    )


def test_new_rows_are_hmacs_under_a_key_that_is_not_in_the_database(
    client_as: Callable[[str], FlaskClient], db: Database, settings: Settings
) -> None:
    _a_day_of_reads(client_as, db)
    first = audit_rows(db)[0]
    key = audit_key(settings)
    assert first["hash"] == trail.row_hash(trail.GENESIS_HASH, 1, trail.stored_values(first), key)
    assert first["hash"] != trail.row_hash(trail.GENESIS_HASH, 1, trail.stored_values(first))
    with db.engine.connect() as conn:
        dumped = " ".join(
            str(value)
            for table in (audit_events, audit_chain)
            for row in conn.execute(select(table))
            for value in row
        )
    assert key.decode() not in dumped


def test_rehashing_without_the_key_is_named_even_without_checkpoints(
    client_as: Callable[[str], FlaskClient], db: Database, runner: CliRunner
) -> None:
    _a_day_of_reads(client_as, db)
    _rewrite_without(db.engine, "patient.read", keep_keyed_era=True)
    report = trail.verify(db.engine)
    assert report.broken_at == 1
    assert "does not match its hash" in report.reason
    assert runner.invoke(main, ["audit", "verify"]).exit_code == 1


def test_rehashing_as_a_plain_trail_is_named_by_the_checkpoints(
    client_as: Callable[[str], FlaskClient],
    db: Database,
    checkpointer: Checkpointer,
    runner: CliRunner,
) -> None:
    """The review's attack in full: the rows of two reads gone, the rest re-hashed with the
    project's code, the head and the triggers put back."""
    _a_day_of_reads(client_as, db)
    assert checkpointer.write() is not None
    _rewrite_without(db.engine, "patient.read")
    assert "patient.read" not in {row["action"] for row in audit_rows(db)}
    assert trail.verify(db.engine).intact  # what the chain alone can tell: nothing
    report = _checked(db, checkpointer)
    assert not report.intact
    assert "re-hashed without the key" in report.reason
    result = runner.invoke(main, ["audit", "verify"])
    assert result.exit_code == 1
    assert "BROKEN" in result.output
    assert "re-hashed" in result.output


def test_a_rehashed_row_is_named_against_its_checkpoint(
    client: FlaskClient, db: Database, checkpointer: Checkpointer, settings: Settings
) -> None:
    """Even with the key (someone on the app's host), a row the checkpoint saw cannot change."""
    new_patient(client)
    checkpointer.write()
    key = audit_key(settings)
    with db.engine.connect() as conn:
        row = dict(conn.execute(select(audit_events)).mappings().one())
    row["username"] = "someone else"
    row["hash"] = trail.row_hash(trail.GENESIS_HASH, 1, trail.stored_values(row), key)
    with audit_guard_lifted(db.engine) as conn:
        conn.execute(audit_events.update().values(username=row["username"], hash=row["hash"]))
        _move_head(conn, 1, row["hash"], 1)
    assert trail.verify(db.engine).intact
    report = _checked(db, checkpointer)
    assert report.broken_at == 1
    assert "is not the row the checkpoint of" in report.reason


def test_a_cut_tail_is_named(
    client: FlaskClient, db: Database, checkpointer: Checkpointer, runner: CliRunner
) -> None:
    for i in range(4):
        new_patient(client, name=f"Row {i}")
    checkpointer.write()
    with db.engine.connect() as conn:
        second = conn.execute(select(audit_events.c.hash).where(audit_events.c.id == 2)).scalar()
    with audit_guard_lifted(db.engine) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id > 2"))
        _move_head(conn, 2, second, 1)
    assert trail.verify(db.engine).intact
    report = _checked(db, checkpointer)
    assert report.broken_at == 3
    assert "the trail ends at row 2" in report.reason
    assert "row 4: its tail was cut" in report.reason
    result = runner.invoke(main, ["audit", "verify"])
    assert result.exit_code == 1
    assert "tail was cut" in result.output


def test_a_forged_checkpoint_line_is_refused(
    client: FlaskClient, checkpointer: Checkpointer, runner: CliRunner
) -> None:
    new_patient(client)
    checkpointer.write()
    assert isinstance(checkpointer.sink, AppendOnlyFile)
    line = checkpointer.sink.path.read_bytes().replace(b'"last_id":1', b'"last_id":0')
    checkpointer.sink.path.write_bytes(line)
    with pytest.raises(CheckpointError, match="line 1 is not signed"):
        read_checkpoints(checkpointer.sink, checkpointer.key)
    result = runner.invoke(main, ["audit", "verify"])
    assert result.exit_code == 1
    assert "checkpoints BROKEN" in result.output


def test_a_checkpoint_is_written_only_when_the_head_moved(
    client: FlaskClient, checkpointer: Checkpointer
) -> None:
    assert checkpointer.write() is None  # an empty trail
    new_patient(client)
    assert checkpointer.write() is not None
    assert checkpointer.write() is None
    assert isinstance(checkpointer.sink, AppendOnlyFile)
    assert stat.S_IMODE(checkpointer.sink.path.stat().st_mode) == 0o600


def test_a_trail_from_before_the_key_keeps_verifying(
    client: FlaskClient, db: Database, checkpointer: Checkpointer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as unkeyed:
        unkeyed.setattr(trail, "_KEYS", {})  # a process of the version before the key
        new_patient(client, name="Plain era")
        new_patient(client, name="Plain era too")
    new_patient(client, name="Keyed era")
    checkpointer.write()
    report = _checked(db, checkpointer)
    assert report.intact
    assert (report.rows, report.keyed_from) == (3, 3)


def test_a_process_without_the_key_cannot_extend_a_keyed_trail(
    client: FlaskClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_patient(client)
    monkeypatch.setattr(trail, "_KEYS", {})
    event = trail.Event("patient.read")
    with pytest.raises(trail.AuditKeyMissing):
        db.write(lambda conn: trail.append(conn, [event]))
    report = trail.verify(db.engine)
    assert "no audit key is configured" in report.reason


def test_the_key_file_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = Settings(env="testing", data_dir=tmp_path)
    first = audit_key(settings)
    assert audit_key(settings) == first
    assert len(first) == 64
    assert stat.S_IMODE(os.stat(tmp_path / "audit.key").st_mode) == 0o600


def test_a_short_configured_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HEALTHCARE_AUDIT_KEY"):
        audit_key(Settings(env="testing", data_dir=tmp_path, audit_key="short"))


def test_a_configured_key_is_used_and_an_empty_one_means_the_key_file(tmp_path: Path) -> None:
    given = "k" * 40
    assert audit_key(Settings(env="testing", data_dir=tmp_path, audit_key=given)) == given.encode()
    assert not (tmp_path / "audit.key").exists()
    from_file = audit_key(Settings(env="testing", data_dir=tmp_path, audit_key=""))
    assert from_file == (tmp_path / "audit.key").read_text().strip().encode()


def _backup(runner: CliRunner, folder: Path) -> str:
    made = runner.invoke(main, ["backup", str(folder)])
    assert made.exit_code == 0, made.output
    return made.output.split("backup written: ")[1].strip()


def test_restore_refuses_a_backup_that_ends_before_the_last_checkpoint(
    client_as: Callable[[str], FlaskClient], db: Database, runner: CliRunner, tmp_path: Path
) -> None:
    path = _backup(runner, tmp_path / "backups")
    pid = _a_day_of_reads(client_as, db)
    assert runner.invoke(main, ["audit", "verify"]).exit_code == 0  # ends with a checkpoint
    refused = runner.invoke(main, ["restore", path, "--yes"])
    assert refused.exit_code == 2
    assert "before the last checkpoint" in refused.output
    with db.engine.connect() as conn:  # nothing was replaced
        assert conn.execute(select(patients.c.id).where(patients.c.id == pid)).scalar() == pid

    forced = runner.invoke(main, ["restore", path, "--yes", "--force"])
    assert forced.exit_code == 0, forced.output
    last: dict[str, Any] = audit_rows(db)[-1]
    assert (last["action"], last["outcome"]) == ("database.restore", "forced")
    assert last["detail"].startswith("forced: trail rewound from row")
    verified = runner.invoke(main, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "a forced restore at" in verified.output


def test_processes_starting_together_make_one_key(tmp_path: Path) -> None:
    settings = Settings(env="testing", data_dir=tmp_path)
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: audit_key(settings), range(32)))
    assert len(keys) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.key"]


def test_a_started_checkpointer_writes_on_its_interval_and_when_stopped(
    client: FlaskClient, db: Database, checkpointer: Checkpointer
) -> None:
    ticking = Checkpointer(db.engine, checkpointer.sink, checkpointer.key, interval=0.05)
    ticking.start()
    try:
        new_patient(client)
        wait_until(lambda: len(read_checkpoints(ticking.sink, ticking.key)) == 1, timeout=10,
                   what="the first checkpoint")  # fmt: skip
        new_patient(client)
        wait_until(lambda: len(read_checkpoints(ticking.sink, ticking.key)) == 2, timeout=10,
                   what="the second checkpoint")  # fmt: skip
    finally:
        ticking.stop()
    last = read_checkpoints(ticking.sink, ticking.key)[-1]
    assert last.last_id == 2


def test_another_key_is_named_not_taken_for_tampering(
    client: FlaskClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore drill on a fresh volume makes a new key: say so, and write nothing with it."""
    new_patient(client)
    trail.use_key(db.engine, b"x" * 64)
    event = trail.Event("patient.read")
    with pytest.raises(trail.AuditKeyMissing, match="keyed with another audit key"):
        db.write(lambda conn: trail.append(conn, [event]))
    report = trail.verify(db.engine)
    assert "keyed with another audit key" in report.reason


@pytest.mark.parametrize(
    "tamper",
    [
        "DELETE FROM audit_disclosures WHERE patient_id = :listed",
        "INSERT INTO audit_disclosures (event_id, patient_id) VALUES (:listing, :other)",
    ],
)
def test_a_disclosure_taken_out_of_or_added_to_a_listing_is_named(
    client: FlaskClient, db: Database, tamper: str
) -> None:
    """Issue 13, items 1 and 3: the patients a listing returned are covered by its row's HMAC,
    so a patient's access log cannot lose (or gain) a listing unseen."""
    listed = new_patient(client, name="Listed Person")["id"]
    other = new_patient(client, name="Other Person")["id"]
    assert client.get("/patients?q=listed").json["total"] == 1
    [listing] = audit_rows(db, action="patient.list")
    assert trail.verify(db.engine).intact
    with audit_guard_lifted(db.engine) as conn:
        conn.execute(text(tamper), {"listed": listed, "listing": listing["id"], "other": other})
    report = trail.verify(db.engine)
    assert (report.broken_at, report.reason) == (
        listing["id"], f"row {listing['id']} does not match its hash",
    )  # fmt: skip


def test_disclosures_of_an_event_beyond_the_trail_are_named(
    client: FlaskClient, db: Database
) -> None:
    listed = new_patient(client, name="Listed Person")["id"]
    client.get("/patients")
    last = audit_rows(db)[-1]["id"]
    with audit_guard_lifted(db.engine) as conn:
        conn.execute(
            text("INSERT INTO audit_disclosures (event_id, patient_id) VALUES (:event, :pid)"),
            {"event": last + 5, "pid": listed},
        )
    report = trail.verify(db.engine)
    assert (report.broken_at, report.reason) == (
        last + 5, f"disclosure rows name event {last + 5}, which is not in the trail",
    )  # fmt: skip
