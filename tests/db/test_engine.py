"""SQLite set-up for durability and concurrency; migrations that are safe to race."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, select, text

from healthcare.audit.pipeline import audited_database, open_database
from healthcare.auth.access import Actor
from healthcare.db import migrate
from healthcare.db.engine import create_db_engine, write_transaction
from healthcare.db.models import patients
from healthcare.patients import service
from healthcare.patients.schemas import PatientIn
from tests.conftest import fresh_postgres_database, postgres_server_url

OPERATOR = Actor.operator()
WRITERS = 4
WRITES_EACH = 40


def _sqlite_engine(path: Path) -> Engine:
    engine = create_db_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    return engine


def _write_patients(url: str, writer: int) -> int:
    db = open_database(url)
    for i in range(WRITES_EACH):
        service.create_patient(db, OPERATOR, PatientIn(name=f"Writer {writer} #{i}", age=30))
        patient_id = service.create_patient(db, OPERATOR, PatientIn(name="Edited", age=1))["id"]
        service.replace_patient(db, OPERATOR, patient_id, PatientIn(name="Edited again", age=2))
    db.dispose()
    return WRITES_EACH


def test_sqlite_connections_are_durable_and_strict(tmp_path: Path) -> None:
    engine = _sqlite_engine(tmp_path / "h.db")
    with engine.connect() as conn:
        pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in
                  ["journal_mode", "synchronous", "foreign_keys", "busy_timeout"]}  # fmt: skip
    assert pragma == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                      "busy_timeout": 30_000}  # fmt: skip


def test_concurrent_writer_processes_never_see_database_locked(tmp_path: Path) -> None:
    engine = _sqlite_engine(tmp_path / "h.db")
    url = str(engine.url)
    with multiprocessing.get_context("spawn").Pool(WRITERS) as pool:
        written = pool.starmap(_write_patients, [(url, w) for w in range(WRITERS)])
    assert sum(written) == WRITERS * WRITES_EACH
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(patients)).scalar_one()
    assert count == WRITERS * WRITES_EACH * 2


def test_concurrent_writer_threads_share_one_engine(tmp_path: Path) -> None:
    db = audited_database(_sqlite_engine(tmp_path / "h.db"))
    with ThreadPoolExecutor(8) as pool:
        created = list(
            pool.map(
                lambda i: service.create_patient(db, OPERATOR, PatientIn(name=f"T{i}", age=1)),
                range(200),
            )
        )
    assert len({p["id"] for p in created}) == 200


def _upgrade(url: str) -> str | None:
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    return migrate.current_revision(engine)


def _empty_database(tmp_path: Path, backend: str, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'{name}.db'}"
    return fresh_postgres_database(postgres_server_url(), name)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_racing_migrations_converge(tmp_path: Path, backend: str) -> None:
    url = _empty_database(tmp_path, backend, "race")
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        revisions = pool.map(_upgrade, [url] * 3)
    assert revisions == [migrate.head_revision()] * 3


def _downgrade(engine: Engine, revision: str) -> None:
    config = migrate._alembic_config()
    with write_transaction(engine) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def _schema(engine: Engine) -> dict[str, list[str]]:
    """Tables and the names of their indexes (expression indexes included)."""
    if engine.dialect.name == "sqlite":
        listing = "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index'"
    else:
        listing = "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'"
    with engine.connect() as conn:
        rows = conn.execute(text(listing)).all()
    return {
        table: sorted(n for t, n in rows if t == table) for table in sorted({t for t, _ in rows})
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_migration_steps_down_and_up_again(tmp_path: Path, backend: str) -> None:
    """A release can be rolled back: each migration's downgrade restores the schema before it."""
    engine = create_db_engine(_empty_database(tmp_path, backend, "steps"))
    try:
        _step_down_and_up(engine)
    finally:
        engine.dispose()


def _step_down_and_up(engine: Engine) -> None:
    script = ScriptDirectory.from_config(migrate._alembic_config())
    revisions = [r.revision for r in script.walk_revisions()]  # newest first
    schemas = {}
    for revision in reversed(revisions):
        migrate.upgrade(engine, revision)
        schemas[revision] = _schema(engine)
    for newer, older in zip(revisions, [*revisions[1:], "base"], strict=True):
        _downgrade(engine, older)
        assert migrate.current_revision(engine) == (None if older == "base" else older), newer
        if older != "base":
            assert _schema(engine) == schemas[older], f"downgrade of {newer}"
    migrate.upgrade(engine)
    assert _schema(engine) == schemas[revisions[0]]


RELEASED_REVISIONS = ["0001", "0002", "0003", "0004r"]


def test_released_databases_find_their_revision_in_the_chain(tmp_path: Path) -> None:
    """A database stamped by an earlier release upgrades: released revision ids never change."""
    script = ScriptDirectory.from_config(migrate._alembic_config())
    oldest_first = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert oldest_first[: len(RELEASED_REVISIONS)] == RELEASED_REVISIONS
    engine = create_db_engine(f"sqlite:///{tmp_path / 'released.db'}")
    try:
        migrate.upgrade(engine, RELEASED_REVISIONS[-1])
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == oldest_first[-1]
    finally:
        engine.dispose()


def test_a_postgresql_server_that_never_answers_fails_the_connection_in_seconds() -> None:
    """An API read runs on the server's event loop: a database host that accepts the
    connection and then says nothing must not hold it for the system's TCP timeout."""
    import socket
    import time

    from sqlalchemy.exc import OperationalError

    from healthcare.db.engine import POSTGRES_CONNECT_TIMEOUT_SECONDS, create_db_engine

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever answers
        port = silent.getsockname()[1]
        engine = create_db_engine(f"postgresql+psycopg://app@127.0.0.1:{port}/healthcare")
        started = time.monotonic()
        with pytest.raises(OperationalError):
            engine.connect()
        waited = time.monotonic() - started
    engine.dispose()
    assert waited < POSTGRES_CONNECT_TIMEOUT_SECONDS * 3
