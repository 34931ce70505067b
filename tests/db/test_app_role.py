"""On PostgreSQL the service runs as a role that cannot lift the audit trail's guard (issue
13, item 1): no DROP TRIGGER, ALTER, TRUNCATE, UPDATE or DELETE of audit rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from healthcare import create_app
from healthcare.audit import trail
from healthcare.auth.access import Actor
from healthcare.auth.tokens import create_token
from healthcare.auth.users import ensure_first_admin
from healthcare.cli import main
from healthcare.config import Settings
from healthcare.db import migrate
from healthcare.db.engine import create_db_engine
from healthcare.db.roles import RoleError, grant_app_role
from tests.conftest import TEST_SECRET, fresh_postgres_database, postgres_server_url

PASSWORD = "app-role-password-for-tests"


@pytest.fixture
def owner_url() -> str:
    url = fresh_postgres_database(postgres_server_url(), "role")
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def app_role(owner_url: str) -> Iterator[str]:
    role = f"hc_app_{uuid.uuid4().hex[:8]}"
    yield role
    owner = create_engine(owner_url, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
    owner.dispose()


def _as(url: str, role: str) -> Engine:
    return create_engine(make_url(url).set(username=role, password=PASSWORD))


@pytest.fixture
def app_engine(owner_url: str, app_role: str, runner_env: CliRunner) -> Iterator[Engine]:
    result = runner_env.invoke(main, ["db", "upgrade", "--app-role", app_role])
    assert result.exit_code == 0, result.output
    engine = _as(owner_url, app_role)
    yield engine
    engine.dispose()


@pytest.fixture
def runner_env(owner_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("HEALTHCARE_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("HEALTHCARE_DATABASE_URL", owner_url)
    monkeypatch.setenv("HEALTHCARE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HEALTHCARE_APP_ROLE_PASSWORD", PASSWORD)
    return CliRunner()


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TRIGGER audit_events_no_change ON audit_events",
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change",
        "ALTER TABLE audit_events ADD COLUMN note text",
        "TRUNCATE audit_events",
        "DELETE FROM audit_events",
        "UPDATE audit_events SET username = 'someone else'",
        "SET session_replication_role = replica",
        "DROP FUNCTION audit_events_append_only CASCADE",
        "CREATE TABLE shadow (id int)",
        "UPDATE alembic_version SET version_num = '0001'",
        "DELETE FROM audit_chain",
        "DELETE FROM audit_disclosures",
        "UPDATE audit_disclosures SET patient_id = 0",
        "DROP TRIGGER audit_disclosures_no_change ON audit_disclosures",
    ],
)
def test_the_app_role_cannot_lift_the_audit_guard(app_engine: Engine, statement: str) -> None:
    with (
        pytest.raises(DBAPIError, match=r"permission denied|must be owner"),
        app_engine.begin() as conn,
    ):
        conn.execute(text(statement))


def test_the_service_runs_as_the_app_role(app_engine: Engine, tmp_path: Path) -> None:
    app_url = app_engine.url.render_as_string(hide_password=False)
    app = create_app(
        Settings(env="testing", secret_key=TEST_SECRET, database_url=app_url, data_dir=tmp_path)
    )
    db = app.extensions["healthcare.db"]
    try:
        migrate.upgrade(db.engine)  # what `serve` does at start: nothing to do, and allowed
        ensure_first_admin(db, "a long enough first password 1")
        token = create_token(db, Actor.operator(), "admin", "role-test")["token"]
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        created = client.post("/patients", json={"name": "Role Test", "age": 30})
        assert created.status_code == 201
        assert client.get(f"/patients/{created.json['id']}").status_code == 200
        assert client.delete(f"/patients/{created.json['id']}").status_code == 204
        db.pending_audit.flush()
        assert trail.verify(db.engine).intact
    finally:
        db.dispose()


@pytest.fixture
def owner_engine(owner_url: str) -> Iterator[Engine]:
    engine = create_db_engine(owner_url)
    yield engine
    engine.dispose()


def test_a_superuser_is_refused_as_the_app_role(owner_engine: Engine) -> None:
    with pytest.raises(RoleError, match="superuser"):
        grant_app_role(owner_engine, "postgres")


def test_a_missing_role_needs_a_password(owner_engine: Engine) -> None:
    with pytest.raises(RoleError, match="HEALTHCARE_APP_ROLE_PASSWORD"):
        grant_app_role(owner_engine, f"hc_missing_{uuid.uuid4().hex[:8]}")
