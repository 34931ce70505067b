"""Fixtures: every database test runs on SQLite and on PostgreSQL (HEALTHCARE_TEST_POSTGRES_URL)."""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from healthcare import create_app
from healthcare.config import Settings
from healthcare.db import migrate
from healthcare.db.database import Database
from healthcare.db.engine import create_db_engine
from healthcare.db.models import Base
from healthcare.observability import BufferedStreamHandler, JsonFormatter

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
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


def empty_all_tables(engine: Engine) -> None:
    tables = [t.name for t in Base.metadata.sorted_tables if t.name != "patient_totals"]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(text("DELETE FROM sqlite_sequence"))
        conn.execute(text("UPDATE patient_totals SET active = 0, deleted = 0"))


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
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["healthcare.db"].dispose()


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


@pytest.fixture
def client(app: OpenAPI) -> FlaskClient:
    return app.test_client()


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
