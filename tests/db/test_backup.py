"""Backups taken while writes run restore to exactly what they hold; bad files are refused."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from healthcare.cli import main
from healthcare.config import Settings
from healthcare.db import backup
from tests.conftest import TEST_SECRET, new_patient
from tests.e2e.conftest import missing


@pytest.fixture(autouse=True)
def client_tools(engine: Engine) -> None:
    if engine.dialect.name == "postgresql" and not shutil.which("pg_dump"):
        missing("pg_dump is not installed (apt-get install postgresql-client)")


def _patients(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id, name, version, deleted_at FROM patients "
                                      "ORDER BY id")))  # fmt: skip


def test_backup_during_writes_restores_exactly_its_contents(
    client: FlaskClient, engine: Engine, tmp_path: Path
) -> None:
    for i in range(20):
        new_patient(client, name=f"Before {i}")
    stop = threading.Event()

    def keep_writing() -> None:
        writer = client.application.test_client()
        writer.environ_base.update(client.environ_base)
        i = 0
        while not stop.is_set():
            new_patient(writer, name=f"During {i}")
            i += 1

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        path = backup.backup(engine, tmp_path / "backups")
    finally:
        stop.set()
        thread.join()
    assert path.name.startswith("healthcare-")
    backup.verify(engine, path)
    new_patient(client, name="After the backup")
    live_before_restore = _patients(engine)

    backup.restore(engine, path)
    restored = _patients(engine)
    assert 20 <= len(restored) < len(live_before_restore)
    assert restored == live_before_restore[: len(restored)]
    assert "After the backup" not in {row[1] for row in restored}


def test_restore_moves_the_revision_forward_so_cached_pages_go(
    client: FlaskClient, engine: Engine, tmp_path: Path
) -> None:
    new_patient(client, name="Kept")
    path = backup.backup(engine, tmp_path)
    new_patient(client, name="Discarded")
    assert client.get("/patients").json["total"] == 2
    backup.restore(engine, path)
    page = client.get("/patients").json
    assert [p["name"] for p in page["items"]] == ["Kept"]


def test_retention_keeps_the_newest(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    written = [backup.backup(engine, folder, keep=2) for _ in range(4)]
    assert sorted(folder.iterdir()) == sorted(written[-2:])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "foreign"])
def test_restore_refuses_a_bad_file_and_keeps_the_data(
    client: FlaskClient, engine: Engine, tmp_path: Path, damage: str
) -> None:
    new_patient(client, name="Precious")
    good = backup.backup(engine, tmp_path / "good")
    bad = tmp_path / f"bad{good.suffix}"
    if damage == "garbage":
        bad.write_bytes(b"this is not a database" * 100)
    elif damage == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        _foreign_backup(engine, bad)
    with pytest.raises(backup.BackupError):
        backup.restore(engine, bad)
    assert [row[1] for row in _patients(engine)] == ["Precious"]


def test_restore_refuses_a_file_with_one_damaged_page(
    client: FlaskClient, engine: Engine, tmp_path: Path
) -> None:
    """A file that opens and names every table, but one of whose pages (an index's) is
    damaged: only the integrity check can tell."""
    if engine.dialect.name != "sqlite":
        pytest.skip("pages are SQLite's; a PostgreSQL dump is checked by pg_restore --list")
    for i in range(20):
        new_patient(client, name=f"Precious {i}")
    good = backup.backup(engine, tmp_path / "good")
    bad = tmp_path / f"bad{good.suffix}"
    shutil.copyfile(good, bad)
    with sqlite3.connect(bad) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'patients' "
            "AND rootpage > 1 ORDER BY rootpage LIMIT 1"
        ).fetchone()
    conn.close()
    with bad.open("r+b") as damaged:
        damaged.seek((root - 1) * page_size)
        damaged.write(b"\xff" * 8)  # an impossible page type and header
    with pytest.raises(backup.BackupError, match=r"integrity check|malformed"):
        backup.restore(engine, bad)
    assert len(_patients(engine)) == 20


def _foreign_backup(engine: Engine, path: Path) -> None:
    """A sound backup file of some other database."""
    if engine.dialect.name == "sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE other (x)")
        conn.commit()
        conn.close()
    else:
        path.write_bytes(b"PGDMP" + b"\0" * 200)


def test_cli_backup_and_restore(
    client: FlaskClient,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setenv("HEALTHCARE_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("HEALTHCARE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HEALTHCARE_DATA_DIR", str(tmp_path))
    patient = new_patient(client, name="Via CLI")
    runner = CliRunner()
    previous_umask = os.umask(0o022)
    request.addfinalizer(lambda: os.umask(previous_umask))
    made = runner.invoke(main, ["backup"])
    assert made.exit_code == 0, made.output
    path = Path(made.output.split("backup written: ")[1].strip())
    assert path.parent == tmp_path / "backups"
    assert path.stat().st_mode & 0o077 == 0, "a backup must be readable by its owner only"
    client.delete(f"/patients/{patient['id']}")
    refused = runner.invoke(main, ["restore", str(tmp_path / "nope.db"), "--yes"])
    assert refused.exit_code == 2
    assert "missing or empty" in refused.output
    # The delete's audit row came after the backup, and the last command checkpointed it.
    behind = runner.invoke(main, ["restore", str(path), "--yes"])
    assert behind.exit_code == 2
    assert "before the last checkpoint" in behind.output
    restored = runner.invoke(main, ["restore", str(path), "--yes", "--force"])
    assert restored.exit_code == 0, restored.output
    assert client.get(f"/patients/{patient['id']}").status_code == 200
