"""The ``healthcare`` command: serve, drain, db, seed, backup, restore, patients, users, tokens,
audit."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.exc import SQLAlchemyError

from healthcare.audit.pipeline import open_configured_database
from healthcare.audit.trail import AuditKeyMissing
from healthcare.auth.access import Actor, Role
from healthcare.auth.tokens import create_token, list_tokens, revoke_token
from healthcare.auth.users import create_user, disable_user, list_users
from healthcare.config import ConfigError, Settings, load_settings
from healthcare.db import migrate
from healthcare.db.backup import BackupError
from healthcare.db.database import Database
from healthcare.db.roles import RoleError, grant_app_role
from healthcare.draining import start_draining, stop_draining
from healthcare.errors import ServiceError
from healthcare.observability import write_line_now

if TYPE_CHECKING:
    from healthcare.audit.checkpoints import Checkpointer, Expectations


def _fail_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Configuration and service refusals end the command with a message, not a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ConfigError, ServiceError, BackupError, RoleError, AuditKeyMissing) as exc:
            click.echo(f"error: {getattr(exc, 'detail', exc)}", err=True)
            sys.exit(2)

    return wrapper


@contextmanager
def _database(settings: Settings | None = None) -> Iterator[Database]:
    """The database for one command, closed afterwards (no connection outlives the command);
    its audit rows are keyed, and the chain's head is checkpointed when it ends."""
    from healthcare.audit.keys import keyed_audit

    settings = settings or load_settings()
    db = open_configured_database(settings)
    checkpointer = keyed_audit(db.engine, settings)
    try:
        yield db
    finally:
        db.pending_audit.flush()
        if _has_schema(db):
            checkpointer.write_quietly()
        db.dispose()


def _has_schema(db: Database) -> bool:
    try:
        return migrate.current_revision(db.engine) is not None
    except SQLAlchemyError:
        return False


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
    from granian.http import HTTP1Settings
    from granian.server import Server

    from healthcare.metrics import fresh_multiprocess_dir

    fresh_multiprocess_dir()  # before anything is measured: every process adds up its samples
    if port:
        os.environ["PORT"] = str(port)  # the workers' settings name the port `drain` marks
    settings = load_settings()
    stop_draining(settings.port)
    with _database(settings) as db:
        migrate.upgrade(db.engine)
        _first_admin(db, settings)
    Server(
        "healthcare.asgi:app",
        address=host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=workers or settings.web_concurrency,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=settings.read_timeout_seconds * 1000),
        respawn_failed_workers=True,
        workers_kill_timeout=30,
        log_access=False,
    ).serve()


@main.command()
@click.option("--port", type=int, default=None, help="The server's port [default: $PORT or 9000].")
@_fail_cleanly
def drain(port: int | None) -> None:
    """Make /readyz answer 503, so the load balancer takes this server out before it is
    stopped (deploy/compose/rolling-update.sh). Requests sent straight to it are still
    answered; `serve` ends the draining when it starts again."""
    port = port or load_settings().port
    start_draining(port)
    click.echo(f"draining: /readyz on port {port} answers 503 until the server starts again")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--app-role", default=None, help="PostgreSQL: the login role the service runs as, "
              "given rows-only rights (made with $HEALTHCARE_APP_ROLE_PASSWORD).")  # fmt: skip
@_fail_cleanly
def db_upgrade(app_role: str | None) -> None:
    """Apply pending migrations (as the owner of the tables)."""
    settings = load_settings()
    with _database(settings) as db:
        migrate.upgrade(db.engine)
        click.echo(f"schema at {migrate.current_revision(db.engine)}")
        if app_role:
            password = settings.app_role_password
            grant_app_role(db.engine, app_role, password.get_secret_value() if password else None)
            click.echo(f"role {app_role} may read and write rows, and nothing more")


@db.command("current")
@_fail_cleanly
def db_current() -> None:
    """Show the schema revision and whether it is the latest."""
    with _database() as db:
        revision, head = migrate.current_revision(db.engine), migrate.head_revision()
    state = "latest" if revision == head else f"head is {head}"
    click.echo(f"{revision or 'empty'} ({state})")


@db.command("copy")
@click.option("--to", "target_url", required=True, metavar="URL",
              help="An empty database: postgresql+psycopg://USER@HOST/NAME")  # fmt: skip
@_fail_cleanly
def db_copy(target_url: str) -> None:
    """Copy every record into an empty database and verify it (SQLite to PostgreSQL).

    Stop the service first: what it writes after the copy starts stays behind."""
    from sqlalchemy.engine import make_url

    from healthcare.db_copy import copy_database

    target_settings = load_settings(database_url=target_url)
    with _database() as source, _database(target_settings) as target:
        report = copy_database(source.engine, target.engine)
        shown = make_url(target_url).render_as_string(hide_password=True)
        _record(target, "database.copy", f"from {source.dialect}, verified")
    for table, rows in report.rows.items():
        click.echo(f"{table:<16} {rows:>10} rows")
    click.echo(f"copied to {shown} and verified; audit trail intact: {report.audit_rows} rows")


@main.command()
@click.option("--count", type=click.IntRange(1, 10_000_000), default=100, show_default=True)
@click.option("--random-seed", type=int, default=None, help="Repeatable data.")
@_fail_cleanly
def seed(count: int, random_seed: int | None) -> None:
    """Insert realistic synthetic patients (no real data)."""
    from healthcare.patients.seed import seed as insert_synthetic

    with _database() as db:
        migrate.upgrade(db.engine)
        written = insert_synthetic(
            db.engine, count, random_seed=random_seed, mrn_prefix=db.mrn_prefix
        )
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
        written = backup.backup(
            db.engine,
            folder or settings.data_dir / "backups",
            keep,
            announce=lambda path: _record(db, "database.backup", str(path)),
        )
    click.echo(f"backup written: {written}")


@main.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Restore even a backup whose audit trail ends "
              "before the last checkpoint (the forcing is recorded in the trail).")  # fmt: skip
@_fail_cleanly
def restore_command(path: Path, yes: bool, force: bool) -> None:
    """Replace the database with a backup, after checking the backup."""
    from healthcare.audit.checkpoints import REWIND
    from healthcare.db import backup

    settings = load_settings()
    with _database(settings) as db:
        backup.verify(db.engine, path)
        checkpointer = _checkpointer(db, settings)
        checkpointed = _expectations(checkpointer).last_id
        restored_to = backup.audit_head(db.engine, path)
        cut = restored_to < checkpointed
        if cut and not force:
            raise BackupError(
                f"the audit trail in {path} ends at row {restored_to}, before the last "
                f"checkpoint (row {checkpointed}): restoring it would remove audit rows. "
                "Use --force to restore it anyway; the forcing is recorded in the audit trail."
            )
        if not yes:
            click.confirm(f"Replace every record with the contents of {path}?", abort=True)
        backup.restore(db.engine, path)
        if cut:
            checkpointer.write(REWIND)
            forced = f"forced: trail rewound from row {checkpointed} to row {restored_to}; {path}"
            _record(db, "database.restore", forced, outcome="forced")
        else:
            _record(db, "database.restore", str(path))  # joins the restored trail's chain
    click.echo(f"restored from {path}" + (" (forced past the last checkpoint)" if cut else ""))


def _checkpointer(db: Database, settings: Settings) -> Checkpointer:
    from healthcare.audit.keys import keyed_audit

    return keyed_audit(db.engine, settings)


def _expectations(checkpointer: Checkpointer) -> Expectations:
    from healthcare.audit.checkpoints import expectations, read_checkpoints

    return expectations(read_checkpoints(checkpointer.sink, checkpointer.key))


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
        purge_patient(db, Actor.operator(), patient_id)
    click.echo(f"patient {patient_id} purged")


@patients.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "ndjson"]), default="csv",
              show_default=True, help="CSV (docs/fhir.md) or FHIR NDJSON.")  # fmt: skip
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-",
              help="File to write [default: standard output].")  # fmt: skip
@_fail_cleanly
def patients_export(fmt: str, output: Any) -> None:
    """Write every patient that is not deleted; each is in the audit trail as exported."""
    from healthcare.exchange import export_lines

    with _database() as db:
        for chunk in export_lines(db, Actor.operator(), fmt):  # type: ignore[arg-type]
            output.write(chunk)


@patients.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "ndjson"]), default=None,
              help="[default: from the file name: .ndjson/.jsonl or CSV]")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
@click.option("--skip-invalid", is_flag=True, help="Create the valid rows even if some are not.")
@click.option("--confirm-duplicates", is_flag=True,
              help="Create rows that look like patients on record too.")  # fmt: skip
@_fail_cleanly
def patients_import(
    path: str, fmt: str | None, dry_run: bool, skip_invalid: bool, confirm_duplicates: bool
) -> None:
    """Create patients from a CSV file (header: docs/fhir.md) or FHIR NDJSON. Nothing is
    written when any row has a problem, unless --skip-invalid."""
    from healthcare.exchange import format_of, read_patients
    from healthcare.exchange.tabular import UnreadableFile
    from healthcare.patients.bulk import import_patients

    chosen = fmt or format_of(path)
    with _database() as db, open(path, encoding="utf-8-sig", newline="") as lines:
        rows = read_patients(lines, chosen)  # type: ignore[arg-type]
        try:
            report = import_patients(
                db,
                Actor.operator(),
                rows,
                dry_run=dry_run,
                skip_invalid=skip_invalid,
                confirm_duplicates=confirm_duplicates,
            )
        except (UnreadableFile, UnicodeDecodeError) as exc:
            raise click.UsageError(f"{path}: {exc}") from None
    for number, message in report.problems:
        click.echo(f"row {number}: {message}", err=True)
    if report.written:
        click.echo(f"created {len(report.created)} of {report.rows} patients")
    else:
        verb = "would create" if dry_run else "nothing written; would create"
        click.echo(f"{verb} {report.to_create} of {report.rows} patients")
    if report.problems and not (dry_run or report.written):
        raise SystemExit(1)


def _record(db: Database, action: str, detail: str, outcome: str = "success") -> None:
    """An operator's action on the whole database, in the audit trail."""
    from healthcare.audit.trail import append

    event = Actor.operator().event(action, detail=detail, outcome=outcome)
    db.write(lambda conn: append(conn, [event]))


FIRST_ADMIN_PASSWORD_FILE = "first-admin-password"  # noqa: S105 (a file name)


def _first_admin(db: Database, settings: Settings) -> None:
    """On an empty user table, create ``admin``. A generated password goes to a file only its
    owner can read, never to the log; it must be changed at the first sign-in."""
    import logging

    from healthcare.auth.users import ensure_first_admin

    given = settings.admin_password.get_secret_value() if settings.admin_password else ""
    try:
        generated = ensure_first_admin(db, given or None)
    except ServiceError as exc:
        raise ConfigError(f"HEALTHCARE_ADMIN_PASSWORD: {exc.detail}") from None
    if generated:
        path = _write_private(settings.data_dir / FIRST_ADMIN_PASSWORD_FILE, generated)
        write_line_now(
            logging.WARNING,
            f"first run: created user 'admin'; its password is in {path} (readable by the "
            "service's user only). Sign in, choose a new password, then delete the file.",
        )


def _write_private(path: Path, text: str) -> Path:
    """``text`` in a file of mode 0600, replacing any earlier one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    return path


@main.group()
def users() -> None:
    """User accounts (roles: viewer, clinician, admin)."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@_fail_cleanly
def users_create(username: str, role: str, password_stdin: bool) -> None:
    """Create a user; the password is asked for (or read from standard input)."""
    from healthcare.auth.schemas import UserIn

    password = _read_password(password_stdin)
    user = _validated(UserIn, username=username, role=role, password=password)
    with _database() as db:
        created = create_user(db, Actor.operator(), user.username, user.role, user.password)
    click.echo(f"created {created['username']} ({created['role']})")


@users.command("list")
@_fail_cleanly
def users_list() -> None:
    """List users with their role and state."""
    with _database() as db:
        rows = list_users(db, Actor.operator())
    for user in rows:
        state = f"disabled {user['disabled_at']}" if user["disabled_at"] else "active"
        click.echo(f"{user['username']:<24} {user['role']:<10} {state}")


@users.command("disable")
@click.argument("username")
@_fail_cleanly
def users_disable(username: str) -> None:
    """Disable a user: their sessions end at once and their tokens stop working."""
    with _database() as db:
        disable_user(db, Actor.operator(), username.strip().lower())
    click.echo(f"disabled {username}")


@main.group()
def tokens() -> None:
    """API bearer tokens."""


@tokens.command("create")
@click.argument("username")
@click.option("--label", default="api", show_default=True, help="What the token is for.")
@click.option("--expires-in", "expires_in", type=click.IntRange(1, 3650), default=None,
              help="Days until it expires [default: 90].")  # fmt: skip
@_fail_cleanly
def tokens_create(username: str, label: str, expires_in: int | None) -> None:
    """Create a token for USERNAME and print it (the only time it is shown)."""
    from healthcare.auth.schemas import TokenIn

    wanted = _validated(TokenIn, username=username, label=label, expires_in_days=expires_in)
    with _database() as db:
        created = create_token(
            db, Actor.operator(), wanted.username, wanted.label, wanted.expires_in_days
        )
    click.echo(created["token"])
    click.echo(
        f"token {created['id']} for {created['username']} ({created['label']}); "
        "store it now, it cannot be shown again",
        err=True,
    )


@tokens.command("list")
@click.argument("username", required=False)
@_fail_cleanly
def tokens_list(username: str | None) -> None:
    """List tokens (never the tokens themselves)."""
    with _database() as db:
        rows = list_tokens(db, Actor.operator(), username.strip().lower() if username else None)
    for token in rows:
        expires = token["expires_at"] or "never"
        click.echo(
            f"{token['id']:>5} {token['username']:<20} {token['label']:<20} "
            f"{token['state']:<8} expires {expires}"
        )


@tokens.command("revoke")
@click.argument("token_id", type=click.IntRange(min=1))
@_fail_cleanly
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by its id (see `healthcare tokens list`)."""
    with _database() as db:
        token = revoke_token(db, Actor.operator(), token_id)
    click.echo(f"revoked token {token_id} ({token['label']} of {token['username']})")


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@_fail_cleanly
def audit_verify() -> None:
    """Check the trail against its hash chain, the audit key and the checkpoints kept outside
    the database; name the first row that breaks it, or a cut tail."""
    from healthcare.audit.checkpoints import CheckpointError
    from healthcare.audit.trail import verify

    settings = load_settings()
    with _database(settings) as db:
        checkpointer = _checkpointer(db, settings)
        try:
            expected = _expectations(checkpointer)
        except CheckpointError as exc:
            click.echo(f"audit checkpoints BROKEN: {exc}", err=True)
            sys.exit(1)
        report = verify(db.engine, expected)
    for rewind in expected.rewinds:
        click.echo(f"note: a forced restore at {rewind.at} rewound the trail to row "
                   f"{rewind.last_id}")  # fmt: skip
    if not report.intact:
        click.echo(f"audit trail BROKEN at row {report.broken_at}: {report.reason}", err=True)
        sys.exit(1)
    keyed = f"keyed from row {report.keyed_from}" if report.keyed_from else "not keyed yet"
    click.echo(
        f"audit trail intact: {report.rows} rows ({keyed}; checked against "
        f"{len(expected.hashes)} checkpointed rows, the last at row {expected.last_id})"
    )


@audit.command("export")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="Only rows at or after this UTC time.")  # fmt: skip
@_fail_cleanly
def audit_export(since: Any) -> None:
    """Write the trail (or the part since a time) to standard output as JSON lines."""
    import orjson

    from healthcare.audit.trail import export

    with _database() as db:
        since_utc = since.replace(tzinfo=UTC) if since else None
        for row in export(db.engine, since_utc):
            sys.stdout.buffer.write(orjson.dumps(row) + b"\n")


def _validated(model: Any, **values: Any) -> Any:
    """The command's arguments through the shared schema; problems worded as on the pages."""
    from healthcare.ui.forms import validated

    data, errors = validated(model, values)
    if data is None:
        raise click.UsageError(
            "; ".join(f"{field}: {message}" for field, message in errors.items())
        )
    return data
