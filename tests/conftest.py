"""Fixtures: every database test runs on SQLite and on PostgreSQL (HEALTHCARE_TEST_POSTGRES_URL)."""

from __future__ import annotations

import functools
import io
import json
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from sqlalchemy import Connection, Engine, create_engine, insert, select, text
from sqlalchemy.engine import make_url

from healthcare import clock, create_app
from healthcare.audit.trail import GENESIS_HASH
from healthcare.auth import tokens
from healthcare.auth.access import Actor, Role
from healthcare.auth.passwords import hash_password
from healthcare.config import Settings
from healthcare.db import migrate
from healthcare.db.database import Database
from healthcare.db.engine import create_db_engine
from healthcare.db.group_commit import GroupCommit
from healthcare.db.models import Base, api_tokens, audit_events, users
from healthcare.observability import BufferedStreamHandler, JsonFormatter

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
TEST_AUDIT_KEY = "test-audit-key-for-live-servers-0123456789"
POSTGRES_ENV = "HEALTHCARE_TEST_POSTGRES_URL"


def postgres_server_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    message = f"PostgreSQL tests need {POSTGRES_ENV} (./run test starts a throw-away server)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must provide one")
    pytest.skip(message)


def fresh_postgres_database(server_url: str, worker: str) -> str:
    name = f"healthcare_test_{worker}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty database of each kind, shared by the tests of one worker."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'healthcare.db'}"
    else:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        url = fresh_postgres_database(postgres_server_url(), worker)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


KEPT_ROWS = {"patient_totals", "audit_chain"}


@contextmanager
def audit_guard_lifted(engine: Engine) -> Iterator[Connection]:
    """A transaction in which audit rows may be changed, as someone with the database itself
    could: replication role on PostgreSQL, the guarding triggers dropped (and re-made at the
    end) on SQLite."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            yield conn
            return
        guards = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN "
                 "('audit_events', 'audit_disclosures')")
        ).all()  # fmt: skip
        for name, _sql in guards:
            conn.execute(text(f"DROP TRIGGER {name}"))
        yield conn
        for _name, sql in guards:
            conn.execute(text(sql))


def empty_all_tables(engine: Engine) -> None:
    """Empty every table, the append-only audit trail included."""
    tables = [t.name for t in Base.metadata.sorted_tables if t.name not in KEPT_ROWS]
    with audit_guard_lifted(engine) as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(text("DELETE FROM sqlite_sequence"))
        conn.execute(text("UPDATE patient_totals SET active = 0, deleted = 0"))
        conn.execute(
            text(
                f"UPDATE audit_chain SET last_id = 0, last_hash = '{GENESIS_HASH}', "
                "keyed_from = NULL, key_id = NULL"
            )
        )


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env="testing", secret_key=TEST_SECRET, database_url=database_url, data_dir=tmp_path
    )


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., OpenAPI]]:
    apps: list[OpenAPI] = []

    def build(**overrides: Any) -> OpenAPI:
        app = create_app(settings.model_copy(update=overrides))
        app.test_client_class = WholeAnswerClient
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["healthcare.db"].dispose()


class WholeAnswerClient(FlaskClient):
    """Reads every answer whole and closes it, as the server's adapter does
    (``healthcare.whole_requests``): a file's answer no longer holds its file open."""

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> Any:
        return super().open(*args, buffered=buffered, **kwargs)


@pytest.fixture
def app(make_app: Callable[..., OpenAPI]) -> OpenAPI:
    application = make_app()
    empty_all_tables(application.extensions["healthcare.db"].engine)
    return application


@pytest.fixture
def db(app: OpenAPI) -> Database:
    return app.extensions["healthcare.db"]


@pytest.fixture
def engine(db: Database) -> Engine:
    return db.engine


TEST_PASSWORD = "correct horse battery staple 42"


@functools.cache
def test_password_hash() -> str:
    return hash_password(TEST_PASSWORD)


@dataclass(frozen=True)
class Account:
    user_id: int
    username: str
    role: Role
    token: str

    def actor(self) -> Actor:
        return Actor(self.user_id, self.username, self.role, token_label="tests", client="test")


def add_user(engine: Engine, username: str, role: str, *, disabled: bool = False) -> int:
    """A user straight into the table, with TEST_PASSWORD (hashed once per test run)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        return conn.execute(
            insert(users)
            .values(
                username=username,
                role=role,
                password_hash=test_password_hash(),
                created_at=now,
                password_changed_at=now,
                disabled_at=now if disabled else None,
            )
            .returning(users.c.id)
        ).scalar_one()


def add_token(
    engine: Engine,
    user_id: int,
    label: str = "tests",
    *,
    expires_at: datetime | None = None,
    revoked: bool = False,
) -> str:
    secret = f"{tokens.PREFIX}{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(api_tokens).values(
                user_id=user_id,
                label=label,
                token_hash=tokens.digest(secret),
                created_at=now,
                expires_at=expires_at,
                revoked_at=now if revoked else None,
            )
        )
    return secret


@pytest.fixture
def accounts(engine: Engine) -> dict[str, Account]:
    """A viewer, a clinician and an admin, each with an API token."""
    made = {}
    for role in Role:
        user_id = add_user(engine, role.value, role.value)
        made[role.value] = Account(user_id, role.value, role, add_token(engine, user_id))
    return made


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client_as(app: OpenAPI, accounts: dict[str, Account]) -> Callable[[str], FlaskClient]:
    """A test client that sends the token of the given role's account."""

    def make(role: str) -> FlaskClient:
        test_client = app.test_client()
        test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {accounts[role].token}"
        return test_client

    return make


@pytest.fixture
def client(client_as: Callable[[str], FlaskClient]) -> FlaskClient:
    """A client signed in as the admin, who may do everything."""
    return client_as("admin")


@pytest.fixture
def anonymous(app: OpenAPI) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin(accounts: dict[str, Account]) -> Actor:
    return accounts["admin"].actor()


def audit_rows(db: Database, **where: Any) -> list[dict[str, Any]]:
    """The audit rows (oldest first) matching ``where``, after flushing pending read events."""
    db.pending_audit.flush()
    statement = select(audit_events).order_by(audit_events.c.id)
    for name, value in where.items():
        statement = statement.where(audit_events.c[name] == value)
    with db.engine.connect() as conn:
        return [dict(row) for row in conn.execute(statement).mappings()]


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Everything the service logs during the test, parsed from its JSON lines."""
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, interval=3600)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("healthcare")
    logger.addHandler(handler)

    def lines() -> list[dict[str, Any]]:
        handler.flush()
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    logger.removeHandler(handler)


def new_patient(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Asha Verma", "age": 34, **fields}
    response = client.post("/patients", json=body)
    assert response.status_code == 201, response.json
    return response.json


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch, app: OpenAPI) -> CliRunner:
    """The ``healthcare`` command against the test database (emptied, with this test's audit
    key: the app's)."""
    monkeypatch.setenv("HEALTHCARE_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("HEALTHCARE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HEALTHCARE_DATA_DIR", str(settings.data_dir))  # the app's audit key
    return CliRunner()


class FakeClock:
    """The service's clock, stopped at the real time and moved only by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(clock, "utc_now", fake)
    return fake


def wait_until(
    condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.05
) -> Any:
    """Poll ``condition`` until it returns something true (returned), or fail after ``timeout``
    seconds naming ``what``: tests wait for a state, never for a guessed length of time."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


_APPS_OF_THIS_PROCESS: dict[str, OpenAPI] = {}


def _status_in_this_process(settings: Settings, method: str, path: str, headers: dict) -> int:
    app = _APPS_OF_THIS_PROCESS.get(settings.database_url)
    if app is None:
        app = _APPS_OF_THIS_PROCESS[settings.database_url] = create_app(settings)
    return app.test_client().open(path, method=method, headers=headers).status_code


@contextmanager
def another_server_process(settings: Settings) -> Iterator[Callable[..., int]]:
    """A second server process on the same database (spawned: no memory shared with this
    one, as with server workers). Yields ``status(method, path, headers)`` of a request to it;
    the process and its app live until the block ends."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:

        def status(method: str, path: str, headers: dict | None = None) -> int:
            call = (settings, method, path, headers or {})
            return pool.apply_async(_status_in_this_process, call).get(timeout=120)

        yield status


def queued_behind_a_held_writer(
    writer: GroupCommit, pool: ThreadPoolExecutor, submit: list[Callable[[], Any]]
) -> list[Future[Any]]:
    """Each of ``submit`` run in ``pool`` and queued, in order, while the group-commit writer
    is held by a transaction of its own: they reach the writer as one batch."""
    started, release = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> None:
        started.set()
        release.wait(5)

    pool.submit(writer.run, blocker)
    assert started.wait(5)
    futures = []
    for queued, call in enumerate(submit, start=1):
        futures.append(pool.submit(call))
        wait_until(lambda n=queued: writer._queue.qsize() == n, timeout=10, what="queued")
    release.set()
    return futures
