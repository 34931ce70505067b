"""Online, verified backups with retention, and restores that refuse a bad file.

SQLite: ``VACUUM INTO`` a temporary name (a consistent snapshot while the service runs),
``PRAGMA integrity_check``, then an atomic rename. PostgreSQL: ``pg_dump`` in its custom format,
checked with ``pg_restore --list``. Only a checked file gets its final name, so a backup that
is there is a backup that restores."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, update
from sqlalchemy.engine import make_url

from healthcare.db import migrate
from healthcare.db.models import patient_total, patient_totals

PREFIX = "healthcare-"
REQUIRED_TABLES = {"patients", "alembic_version"}


class BackupError(RuntimeError):
    pass


def _suffix(engine: Engine) -> str:
    return ".db" if engine.dialect.name == "sqlite" else ".dump"


def backup(
    engine: Engine, folder: Path, keep: int = 7, announce: Callable[[Path], None] | None = None
) -> Path:
    """Write a checked backup into ``folder`` and keep only the newest ``keep`` of them.

    ``announce`` is called with the backup's name before the snapshot is taken, so that the
    audit row saying so is in the backup itself: a restore of the newest backup then loses no
    audit row (and needs no ``--force``)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = folder / f"{PREFIX}{stamp}{_suffix(engine)}"
    partial = folder / f".{final.name}.partial"
    if announce is not None:
        announce(final)
    try:
        if engine.dialect.name == "sqlite":
            _sqlite_snapshot(engine, partial)
        else:
            _pg_dump(engine, partial)
        verify(engine, partial)
        _durable_rename(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    _apply_retention(folder, _suffix(engine), keep)
    return final


def verify(engine: Engine, path: Path) -> None:
    """Raise BackupError unless ``path`` is a sound backup of this service's database."""
    if not path.is_file() or path.stat().st_size == 0:
        raise BackupError(f"{path} is missing or empty")
    if engine.dialect.name == "sqlite":
        _verify_sqlite(path)
    else:
        _verify_pg_dump(path)


def restore(engine: Engine, path: Path) -> None:
    """Replace the database's contents with a checked backup, then bring its schema up to date.

    The patients revision is moved past its value before the restore, so no server process
    can serve a page it cached from the timeline the restore discarded."""
    verify(engine, path)
    migrate.upgrade(engine)  # a fresh database gets the schema, so its revision can be read
    revision = _revision(engine)
    if engine.dialect.name == "sqlite":
        _sqlite_restore(engine, path)
    else:
        _pg_restore(engine, path)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        behind = revision + 1 - conn.execute(patient_total(patient_totals.c.revision)).scalar_one()
        if behind > 0:
            slot = patient_totals.c.id == 1
            conn.execute(
                update(patient_totals)
                .where(slot)
                .values(revision=patient_totals.c.revision + behind)
            )


def audit_head(engine: Engine, path: Path) -> int:
    """The id of the last audit row in a backup (0 for a backup without an audit trail)."""
    if engine.dialect.name == "sqlite":
        return _sqlite_audit_head(path)
    return _pg_dump_audit_head(path)


def _sqlite_audit_head(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT last_id FROM audit_chain").fetchone()
    except sqlite3.OperationalError:
        return 0  # a backup from before the audit trail
    finally:
        conn.close()
    return int(row[0]) if row else 0


def _pg_dump_audit_head(path: Path) -> int:
    done = _run(["pg_restore", "--data-only", "--table=audit_chain", "--file=-", str(path)])
    if done.returncode != 0:
        raise BackupError(f"{path}: cannot read its audit chain: {done.stderr.strip()}")
    lines = done.stdout.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("COPY ") and number + 1 < len(lines) and lines[number + 1] != "\\.":
            columns = line[line.index("(") + 1 : line.index(")")].split(", ")
            return int(lines[number + 1].split("\t")[columns.index("last_id")])
    return 0


def _sqlite_path(engine: Engine) -> str:
    database = engine.url.database
    if not database or database == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    return database


def _sqlite_snapshot(engine: Engine, target: Path) -> None:
    conn = sqlite3.connect(_sqlite_path(engine), timeout=30)
    try:
        conn.execute("VACUUM INTO ?", (str(target),))
    finally:
        conn.close()


def _verify_sqlite(path: Path) -> None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from None
    if result != "ok":
        raise BackupError(f"{path} fails the integrity check: {result}")
    if not tables >= REQUIRED_TABLES:
        raise BackupError(f"{path} is not a backup of this service (no patients table)")


def _sqlite_restore(engine: Engine, path: Path) -> None:
    engine.dispose()
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    target = sqlite3.connect(_sqlite_path(engine), timeout=30)
    try:
        source.backup(target)  # page by page, under SQLite's own locks: safe while serving
    finally:
        source.close()
        target.close()


def _libpq_url(engine: Engine) -> str:
    url = make_url(engine.url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} is not installed (the PostgreSQL client tools)")
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _pg_dump(engine: Engine, target: Path) -> None:
    done = _run(["pg_dump", "--format=custom", f"--file={target}", _libpq_url(engine)])
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()}")


def _verify_pg_dump(path: Path) -> None:
    done = _run(["pg_restore", "--list", str(path)])
    if done.returncode != 0:
        raise BackupError(f"{path} is not a readable pg_dump archive: {done.stderr.strip()}")
    if "TABLE DATA public patients" not in done.stdout:
        raise BackupError(f"{path} is not a backup of this service (no patients table)")


def _pg_restore(engine: Engine, path: Path) -> None:
    engine.dispose()
    done = _run(
        ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
         f"--dbname={_libpq_url(engine)}", str(path)]
    )  # fmt: skip
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()}")


def _revision(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(patient_total(patient_totals.c.revision)).scalar_one()


def _durable_rename(partial: Path, final: Path) -> None:
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _apply_retention(folder: Path, suffix: str, keep: int) -> None:
    backups = sorted(folder.glob(f"{PREFIX}*{suffix}"), reverse=True)
    for old in backups[keep:]:
        old.unlink()
