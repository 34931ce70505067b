"""The ``healthcare`` command: serve, db, seed, patients."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

import click

from healthcare.config import ConfigError, Settings, load_settings
from healthcare.db import migrate
from healthcare.db.backup import BackupError
from healthcare.db.database import Database
from healthcare.errors import ServiceError


def _fail_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Configuration and service refusals end the command with a message, not a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ConfigError, ServiceError, BackupError) as exc:
            click.echo(f"error: {getattr(exc, 'detail', exc)}", err=True)
            sys.exit(2)

    return wrapper


@contextmanager
def _database(settings: Settings | None = None) -> Iterator[Database]:
    """The database for one command, closed afterwards (no connection outlives the command)."""
    settings = settings or load_settings()
    db = Database.from_url(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    try:
        yield db
    finally:
        db.dispose()


@click.group()
@click.version_option(package_name="healthcare")
def main() -> None:
    """Patient records for a clinic."""
    # Databases, their WAL files and backups hold health data: readable by this user only.
    os.umask(0o077)


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to bind.")  # noqa: S104
@click.option("--port", type=int, default=None, help="Port to bind [default: $PORT or 9000].")
@click.option("--workers", type=int, default=None, help="[default: $WEB_CONCURRENCY or 2]")
@_fail_cleanly
def serve(host: str, port: int | None, workers: int | None) -> None:
    """Apply pending migrations, then run the production server."""
    from granian.constants import Interfaces
    from granian.server import Server

    settings = load_settings()
    with _database(settings) as db:
        migrate.upgrade(db.engine)
    Server(
        "healthcare.wsgi:app",
        address=host,
        port=port or settings.port,
        interface=Interfaces.WSGI,
        workers=workers or settings.web_concurrency,
        blocking_threads=settings.blocking_threads,
        respawn_failed_workers=True,
        workers_kill_timeout=30,
        log_access=False,
    ).serve()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@_fail_cleanly
def db_upgrade() -> None:
    """Apply pending migrations."""
    with _database() as db:
        migrate.upgrade(db.engine)
        click.echo(f"schema at {migrate.current_revision(db.engine)}")


@db.command("current")
@_fail_cleanly
def db_current() -> None:
    """Show the schema revision and whether it is the latest."""
    with _database() as db:
        revision, head = migrate.current_revision(db.engine), migrate.head_revision()
    state = "latest" if revision == head else f"head is {head}"
    click.echo(f"{revision or 'empty'} ({state})")


@main.command()
@click.option("--count", type=click.IntRange(1, 10_000_000), default=100, show_default=True)
@click.option("--random-seed", type=int, default=None, help="Repeatable data.")
@_fail_cleanly
def seed(count: int, random_seed: int | None) -> None:
    """Insert realistic synthetic patients (no real data)."""
    from healthcare.patients.seed import seed as insert_synthetic

    with _database() as db:
        migrate.upgrade(db.engine)
        written = insert_synthetic(db.engine, count, random_seed=random_seed)
    click.echo(f"inserted {written} patients")


@main.command("backup")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--keep", type=click.IntRange(min=1), default=7, show_default=True,
              help="How many backups to keep in the folder.")  # fmt: skip
@_fail_cleanly
def backup_command(folder: Path | None, keep: int) -> None:
    """Write an online, checked backup [default folder: $HEALTHCARE_DATA_DIR/backups]."""
    from healthcare.db import backup

    settings = load_settings()
    with _database(settings) as db:
        written = backup.backup(db.engine, folder or settings.data_dir / "backups", keep)
    click.echo(f"backup written: {written}")


@main.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_fail_cleanly
def restore_command(path: Path, yes: bool) -> None:
    """Replace the database with a backup, after checking the backup."""
    from healthcare.db import backup

    with _database() as db:
        backup.verify(db.engine, path)
        if not yes:
            click.confirm(f"Replace every record with the contents of {path}?", abort=True)
        backup.restore(db.engine, path)
    click.echo(f"restored from {path}")


@main.group()
def patients() -> None:
    """Operator actions on patient records."""


@patients.command("purge")
@click.argument("patient_id", type=click.IntRange(min=1))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_fail_cleanly
def patients_purge(patient_id: int, yes: bool) -> None:
    """Permanently remove a soft-deleted patient. This cannot be undone."""
    from healthcare.patients.service import purge_patient

    if not yes:
        click.confirm(f"Permanently remove patient {patient_id}? This cannot be undone", abort=True)
    with _database() as db:
        purge_patient(db, patient_id)
    click.echo(f"patient {patient_id} purged")
