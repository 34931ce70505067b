"""Backups on SQLite, each rule on a database of the test's own: names, retention, the checks a
file must pass before it counts as a backup, and restores into fresh or older databases."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text

from healthcare.db import backup, migrate
from healthcare.db.engine import create_db_engine
from tests.conftest import fresh_postgres_database, new_patient, postgres_server_url

BACKUP_NAME = re.compile(r"healthcare-\d{8}T\d{12}Z\.db")


@pytest.fixture
def own_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database with one patient, in the test's own folder."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'live.db'}")
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO patients (name, name_search, age, created_at, updated_at, version) "
            "VALUES ('Kept Patient', 'kept patient', 40, '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00', 1)"
        ))  # fmt: skip
    yield engine
    engine.dispose()


def _names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT name FROM patients ORDER BY id")).scalars())


def _sqlite_file(path: Path, *tables: str) -> Path:
    conn = sqlite3.connect(path)
    for table in tables:
        conn.execute(f"CREATE TABLE {table} (x)")
    conn.commit()
    conn.close()
    return path


def test_a_backup_is_one_named_file_in_a_folder_made_as_needed(
    own_engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "nested" / "backups"
    path = backup.backup(own_engine, folder)
    assert path.parent == folder
    assert BACKUP_NAME.fullmatch(path.name), path.name
    assert list(folder.iterdir()) == [path]
    backup.verify(own_engine, path)


def test_the_name_carries_the_utc_time_whatever_the_local_zone(
    own_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30
    time.tzset()
    try:
        path = backup.backup(own_engine, tmp_path)
    finally:
        monkeypatch.undo()
        time.tzset()
    stamp = datetime.strptime(path.name[len("healthcare-") : -len(".db")], "%Y%m%dT%H%M%S%fZ")
    assert abs(stamp.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=5)


def test_seven_backups_are_kept_by_default(own_engine: Engine, tmp_path: Path) -> None:
    written = [backup.backup(own_engine, tmp_path / "b") for _ in range(8)]
    assert sorted((tmp_path / "b").iterdir()) == written[1:]


def test_retention_leaves_other_files_alone(own_engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    others = [folder / "notes.txt", folder / "healthcare-manual.dump", folder / "other.db"]
    for other in others:
        other.write_text("not a backup")
    newest = [backup.backup(own_engine, folder, keep=1) for _ in range(2)][-1]
    assert sorted(folder.iterdir()) == sorted([*others, newest])


def test_a_backup_that_fails_its_check_leaves_nothing_behind(tmp_path: Path) -> None:
    foreign = create_db_engine(f"sqlite:///{_sqlite_file(tmp_path / 'foreign.db', 'other')}")
    with pytest.raises(backup.BackupError, match="not a backup of this service"):
        backup.backup(foreign, tmp_path / "b")
    foreign.dispose()
    assert list((tmp_path / "b").iterdir()) == []


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_cannot_be_backed_up(url: str, tmp_path: Path) -> None:
    engine = create_engine(url)
    with pytest.raises(backup.BackupError, match=r"^an in-memory database cannot be backed up$"):
        backup.backup(engine, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make", [lambda path: None, lambda path: path.write_bytes(b"")])
def test_a_missing_or_empty_file_is_refused_as_such(
    own_engine: Engine, tmp_path: Path, make: Callable[[Path], object]
) -> None:
    path = tmp_path / "candidate.db"
    make(path)
    with pytest.raises(backup.BackupError, match=r"is missing or empty$"):
        backup.verify(own_engine, path)


def test_a_file_that_is_not_sqlite_is_refused(own_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"not a database at all" * 300)
    with pytest.raises(backup.BackupError, match="is not a readable SQLite database"):
        backup.verify(own_engine, path)


def test_a_file_with_one_corrupted_page_fails_the_integrity_check(
    own_engine: Engine, tmp_path: Path
) -> None:
    path = backup.backup(own_engine, tmp_path / "b")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE filler (x)")
    conn.executemany("INSERT INTO filler VALUES (?)", [(f"row {i} " * 8,) for i in range(3000)])
    conn.commit()
    [(page_size,)] = conn.execute("PRAGMA page_size").fetchall()
    [(leaf,)] = conn.execute(
        "SELECT pageno FROM dbstat WHERE name = 'filler' AND pagetype = 'leaf' LIMIT 1 OFFSET 10"
    ).fetchall()
    conn.close()
    data = bytearray(path.read_bytes())
    cell_pointers = (leaf - 1) * page_size + 8  # after the leaf page's 8-byte header
    data[cell_pointers : cell_pointers + 40] = b"\xff" * 40
    path.write_bytes(bytes(data))
    # SQLite reports the damage as the check's finding, or fails the check as malformed.
    with pytest.raises(backup.BackupError, match=r"fails the integrity check|malformed"):
        backup.verify(own_engine, path)


@pytest.mark.parametrize(
    ("tables", "accepted"),
    [
        (("patients", "alembic_version"), True),
        (("patients",), False),
        (("alembic_version",), False),
    ],
)
def test_a_backup_must_hold_the_services_tables(
    own_engine: Engine, tmp_path: Path, tables: tuple[str, ...], accepted: bool
) -> None:
    path = _sqlite_file(tmp_path / "candidate.db", *tables)
    if accepted:
        backup.verify(own_engine, path)
    else:
        with pytest.raises(backup.BackupError, match="not a backup of this service"):
            backup.verify(own_engine, path)


def test_a_restore_into_a_fresh_database_brings_the_data(
    own_engine: Engine, tmp_path: Path
) -> None:
    path = backup.backup(own_engine, tmp_path / "b")
    fresh = create_db_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    backup.restore(fresh, path)
    assert _names(fresh) == ["Kept Patient"]
    fresh.dispose()


def test_a_backup_from_an_older_schema_restores_to_the_current_one(
    own_engine: Engine, tmp_path: Path
) -> None:
    older = create_db_engine(f"sqlite:///{tmp_path / 'older.db'}")
    migrate.upgrade(older, "0002")
    path = backup.backup(older, tmp_path / "b")
    older.dispose()
    backup.restore(own_engine, path)
    assert migrate.current_revision(own_engine) == migrate.head_revision()
    assert _names(own_engine) == []


def test_no_page_cached_before_a_restore_is_served_after_it(
    client: FlaskClient, engine: Engine, tmp_path: Path
) -> None:
    new_patient(client, name="Kept")
    path = backup.backup(engine, tmp_path)
    new_patient(client, name="Discarded")
    assert client.get("/patients").json["total"] == 2  # cached at the live revision
    backup.restore(engine, path)
    new_patient(client, name="Restored Timeline")  # one write on: the revision must not repeat
    page = client.get("/patients").json
    assert [p["name"] for p in page["items"]] == ["Kept", "Restored Timeline"]


def _backups_tell_their_audit_head(engine: Engine, folder: Path) -> None:
    """What restore compares with the last checkpoint: the chain head inside the backup, 0
    for a chain that has not begun."""
    assert backup.audit_head(engine, backup.backup(engine, folder / "fresh")) == 0
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_chain SET last_id = 41"))
    assert backup.audit_head(engine, backup.backup(engine, folder / "chained")) == 41
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_chain"))
    assert backup.audit_head(engine, backup.backup(engine, folder / "unchained")) == 0


def test_a_sqlite_backup_tells_the_last_audit_row_it_holds(
    own_engine: Engine, tmp_path: Path
) -> None:
    _backups_tell_their_audit_head(own_engine, tmp_path)


def test_a_sqlite_file_from_before_the_audit_trail_has_head_zero(
    own_engine: Engine, tmp_path: Path
) -> None:
    assert backup.audit_head(own_engine, _sqlite_file(tmp_path / "old.db", "patients")) == 0


# PostgreSQL's side without a server: the tools are called, and their failures reported.
PG_ENGINE_URL = "postgresql+psycopg://clinic:s3cret@127.0.0.1:1/records"


@pytest.fixture
def pg_tools() -> None:
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        message = "pg_dump and pg_restore are not installed (apt-get install postgresql-client)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must provide them")
        pytest.skip(message)


def test_the_pg_tools_get_a_libpq_url_with_the_password() -> None:
    engine = create_engine(PG_ENGINE_URL)
    assert backup._libpq_url(engine) == "postgresql://clinic:s3cret@127.0.0.1:1/records"


def test_a_missing_tool_is_named() -> None:
    with pytest.raises(backup.BackupError, match=r"^no-such-tool-4711 is not installed \("):
        backup._run(["no-such-tool-4711", "--version"])


def test_a_tool_run_gives_back_its_exit_code_and_both_outputs() -> None:
    done = backup._run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


@pytest.mark.usefixtures("pg_tools")
def test_a_failed_pg_dump_is_reported_and_leaves_nothing(tmp_path: Path) -> None:
    engine = create_engine(PG_ENGINE_URL)
    with pytest.raises(backup.BackupError, match=r"^pg_dump failed: \S"):
        backup.backup(engine, tmp_path / "b")
    assert list((tmp_path / "b").iterdir()) == []


@pytest.mark.usefixtures("pg_tools")
def test_a_file_that_is_not_a_pg_dump_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.dump"
    path.write_bytes(b"PGDMP" + b"\0" * 200)
    with pytest.raises(backup.BackupError, match=r"is not a readable pg_dump archive: \S"):
        backup.verify(create_engine(PG_ENGINE_URL), path)
    with pytest.raises(backup.BackupError, match=r"garbage.dump: cannot read its audit chain: \S"):
        backup.audit_head(create_engine(PG_ENGINE_URL), path)


def test_pg_backups_are_dump_files_and_sqlite_ones_db_files(own_engine: Engine) -> None:
    assert backup._suffix(create_engine(PG_ENGINE_URL)) == ".dump"
    assert backup._suffix(own_engine) == ".db"


@pytest.fixture
def pg_database(pg_tools: None) -> Iterator[Engine]:
    """A migrated PostgreSQL database of the test's own, with one patient (needs a server:
    skipped locally without one, a failure under CI, as every PostgreSQL test)."""
    engine = create_db_engine(fresh_postgres_database(postgres_server_url(), "backup"))
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO patients (name, name_search, age, created_at, updated_at, version) "
            "VALUES ('Kept Patient', 'kept patient', 40, now(), now(), 1)"
        ))  # fmt: skip
    yield engine
    engine.dispose()


def test_a_pg_backup_is_a_checked_dump_that_restores(pg_database: Engine, tmp_path: Path) -> None:
    path = backup.backup(pg_database, tmp_path)
    assert re.fullmatch(r"healthcare-\d{8}T\d{12}Z\.dump", path.name), path.name
    backup.verify(pg_database, path)
    with pg_database.begin() as conn:
        conn.execute(text("UPDATE patients SET name = 'Changed'"))
    backup.restore(pg_database, path)
    assert _names(pg_database) == ["Kept Patient"]


def test_a_pg_dump_of_another_database_is_not_a_backup(pg_tools: None, tmp_path: Path) -> None:
    foreign = create_db_engine(fresh_postgres_database(postgres_server_url(), "foreign"))
    with foreign.begin() as conn:
        conn.execute(text("CREATE TABLE other (x int)"))
    with pytest.raises(backup.BackupError, match=r"is not a backup of this service \(no patients"):
        backup.backup(foreign, tmp_path)
    foreign.dispose()
    assert list(tmp_path.iterdir()) == []


def test_a_pg_backup_tells_the_last_audit_row_it_holds(pg_database: Engine, tmp_path: Path) -> None:
    _backups_tell_their_audit_head(pg_database, tmp_path)
