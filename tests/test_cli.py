"""The operator's command line."""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

import granian.server
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import text

from healthcare.audit import trail
from healthcare.auth.access import Actor
from healthcare.cli import main
from healthcare.db import migrate
from healthcare.db.database import Database
from healthcare.draining import is_draining, start_draining
from healthcare.metrics import MULTIPROCESS_DIR
from tests.conftest import audit_rows, new_patient


@pytest.mark.usefixtures("app")
def test_db_upgrade_and_current(runner: CliRunner) -> None:
    result = runner.invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    current = runner.invoke(main, ["db", "current"])
    assert current.output.strip() == f"{migrate.head_revision()} (latest)"


def test_seed_inserts_searchable_patients(runner: CliRunner, client: FlaskClient) -> None:
    result = runner.invoke(main, ["seed", "--count", "250", "--random-seed", "7"])
    assert result.exit_code == 0, result.output
    assert "inserted 250" in result.output
    page = client.get("/patients?limit=500").json
    assert page["total"] == 250
    first_word = page["items"][0]["name"].split()[0]
    found = client.get("/patients", query_string={"q": first_word}).json["items"]
    assert page["items"][0]["id"] in {p["id"] for p in found}


def test_purge_removes_a_deleted_patient_for_good(runner: CliRunner, client: FlaskClient) -> None:
    patient = new_patient(client)
    client.delete(f"/patients/{patient['id']}")
    result = runner.invoke(main, ["patients", "purge", str(patient["id"]), "--yes"])
    assert result.exit_code == 0, result.output
    assert client.get("/patients/deleted").json["total"] == 0
    assert client.post(f"/patients/{patient['id']}/restore").status_code == 404


def test_purge_refuses_a_live_patient(runner: CliRunner, client: FlaskClient) -> None:
    patient = new_patient(client)
    result = runner.invoke(main, ["patients", "purge", str(patient["id"]), "--yes"])
    assert result.exit_code == 2
    assert "not deleted" in result.output
    assert client.get(f"/patients/{patient['id']}").status_code == 200


def test_purge_asks_before_acting(runner: CliRunner, client: FlaskClient) -> None:
    patient = new_patient(client)
    client.delete(f"/patients/{patient['id']}")
    result = runner.invoke(main, ["patients", "purge", str(patient["id"])], input="n\n")
    assert result.exit_code == 1
    assert client.get("/patients/deleted").json["total"] == 1


def test_purged_ids_are_never_reused(runner: CliRunner, client: FlaskClient) -> None:
    patient = new_patient(client)
    client.delete(f"/patients/{patient['id']}")
    runner.invoke(main, ["patients", "purge", str(patient["id"]), "--yes"])
    assert new_patient(client)["id"] > patient["id"]


def test_commands_refuse_a_missing_secret_key(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HEALTHCARE_SECRET_KEY")
    monkeypatch.delenv("HEALTHCARE_ENV", raising=False)
    result = runner.invoke(main, ["db", "current"])
    assert result.exit_code == 2
    assert "HEALTHCARE_SECRET_KEY" in result.output


def test_totals_stay_exact_through_every_change(runner: CliRunner, client: FlaskClient) -> None:
    a, b, c = (new_patient(client, name=n) for n in "ABC")
    client.delete(f"/patients/{a['id']}")
    client.delete(f"/patients/{b['id']}")
    client.post(f"/patients/{b['id']}/restore")
    runner.invoke(main, ["patients", "purge", str(a["id"]), "--yes"])
    engine = client.application.extensions["healthcare.db"].engine
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT sum(active), sum(deleted) FROM patient_totals")).one()
        counted = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE deleted_at IS NULL), "
                "count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM patients"
            )
        ).one()
    assert tuple(kept) == tuple(counted) == (2, 0)
    assert c["id"] in {p["id"] for p in client.get("/patients").json["items"]}


def test_backup_and_restore_are_in_the_audit_trail(
    runner: CliRunner, client: FlaskClient, db: Database, tmp_path: Path
) -> None:
    new_patient(client)
    made = runner.invoke(main, ["backup", str(tmp_path)])
    assert made.exit_code == 0, made.output
    path = made.output.split("backup written: ")[1].strip()
    assert [r["action"] for r in audit_rows(db)][-1] == "database.backup"
    restored = runner.invoke(main, ["restore", path, "--yes"])
    assert restored.exit_code == 0, restored.output
    rows = audit_rows(db)
    assert rows[-1]["action"] == "database.restore"
    assert rows[-1]["username"].startswith("operator:")
    # announced before the copy: the newest backup holds the whole trail (no --force needed)
    assert [r["action"] for r in rows][-2:] == ["database.backup", "database.restore"]
    assert trail.verify(db.engine).intact


def test_the_operator_is_named_by_the_real_user_id_not_logname(
    runner: CliRunner, db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 13, item 9: LOGNAME (or USER) is whatever the caller sets."""
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, "someone-else")
    assert runner.invoke(main, ["backup", str(tmp_path / "backups")]).exit_code == 0
    [row] = audit_rows(db, action="database.backup")
    assert row["username"] == f"operator:{pwd.getpwuid(os.getuid()).pw_name}"


def test_a_uid_without_a_name_is_recorded_as_its_number(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(uid: int) -> pwd.struct_passwd:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    assert Actor.operator().username == f"operator:uid={os.getuid()}"


def test_drain_marks_the_port_it_is_given_or_the_configured_one(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PORT", "9123")
    assert runner.invoke(main, ["drain", "--port", "9456"]).exit_code == 0
    assert (is_draining(9456), is_draining(9123)) == (True, False)
    result = runner.invoke(main, ["drain"])
    assert result.exit_code == 0, result.output
    assert "port 9123" in result.output
    assert is_draining(9123)


def test_serve_ends_a_draining_left_from_before_and_tells_the_workers_its_port(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A drained replica that is started again must become ready; its workers read the port
    from the environment, so they look for the marker `drain --port` leaves."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PORT", "9000")  # restored afterwards, as is the samples folder
    monkeypatch.setenv(MULTIPROCESS_DIR, str(tmp_path))
    start_draining(9789)
    seen: dict[str, object] = {}

    class RecordingServer:
        def __init__(self, target: str, **options: object) -> None:
            seen["port"] = options["port"]

        def serve(self) -> None:
            seen["draining"] = is_draining(9789)
            seen["PORT"] = os.environ["PORT"]

    monkeypatch.setattr(granian.server, "Server", RecordingServer)
    result = runner.invoke(main, ["serve", "--port", "9789"])
    assert result.exit_code == 0, result.output
    assert seen == {"port": 9789, "draining": False, "PORT": "9789"}
