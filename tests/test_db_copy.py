"""`healthcare db copy`: every record moves, ids and the audit chain hold, bad targets are refused.

The source is each kind of database the suite runs on; the target is a new SQLite file and a
new PostgreSQL database (the upgrade path is SQLite to PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from sqlalchemy import Engine, select, update

from healthcare import db_copy as copy
from healthcare.audit import trail
from healthcare.auth.sessions import COOKIE
from healthcare.cli import main
from healthcare.db import migrate
from healthcare.db.engine import create_db_engine
from healthcare.db.models import Base, audit_events
from tests.auth.test_sessions import sign_in
from tests.conftest import (
    Account,
    audit_guard_lifted,
    bearer,
    fresh_postgres_database,
    new_patient,
    postgres_server_url,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'target.db'}"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return fresh_postgres_database(postgres_server_url(), f"copy_{worker}")


@pytest.fixture
def target_app(make_app: Callable[..., OpenAPI], target_url: str) -> Callable[[], OpenAPI]:
    return lambda: make_app(database_url=target_url)


@pytest.fixture
def target_engine(target_url: str) -> Iterator[Engine]:
    engine = create_db_engine(target_url)
    yield engine
    engine.dispose()


def _copy(runner: CliRunner, target_url: str) -> tuple[int, str]:
    result = runner.invoke(main, ["db", "copy", "--to", target_url])
    return result.exit_code, result.output


def _patients(client: FlaskClient) -> list[dict]:
    return client.get("/patients?limit=100").json["items"]


def _audit_tail(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(select(audit_events.c.id, audit_events.c.action, audit_events.c.hash)
                            .order_by(audit_events.c.id)).all()  # fmt: skip
    return [tuple(row) for row in rows]


def test_copy_moves_every_record_and_the_copy_serves_as_before(
    app: OpenAPI,
    client: FlaskClient,
    accounts: dict[str, Account],
    runner: CliRunner,
    target_url: str,
    target_app: Callable[[], OpenAPI],
    target_engine: Engine,
) -> None:
    kept = [new_patient(client, name=f"Patient {i}", age=20 + i) for i in range(3)]
    assert client.patch(f"/patients/{kept[0]['id']}", json={"age": 61}).status_code == 200
    known = {"system": "nhs", "value": "9434765919"}
    identified = new_patient(client, name="Asha Verma", identifiers=[known])
    client.delete(f"/patients/{kept[1]['id']}")
    purged = new_patient(client, name="Purged later")
    client.delete(f"/patients/{purged['id']}")
    assert runner.invoke(main, ["patients", "purge", str(purged["id"]), "--yes"]).exit_code == 0
    browser = app.test_client()
    assert sign_in(browser, "clinician").status_code == 303
    source_patients = _patients(client)
    source_history = client.get(f"/patients/{kept[0]['id']}/history").json["items"]
    app.extensions["healthcare.db"].pending_audit.flush()  # the reads' audit rows, written now
    source_audit = _audit_tail(app.extensions["healthcare.db"].engine)

    exit_code, output = _copy(runner, target_url)

    assert exit_code == 0, output
    assert "verified; audit trail intact" in output
    copied = _audit_tail(target_engine)
    assert copied[:-1] == source_audit
    assert copied[-1][1] == "database.copy"
    assert trail.verify(target_engine).intact
    served = target_app().test_client()
    assert (
        served.get("/patients?limit=100", headers=bearer(accounts["admin"].token)).json["items"]
        == source_patients
    )
    admin = bearer(accounts["admin"].token)
    history = served.get(f"/patients/{kept[0]['id']}/history", headers=admin).json["items"]
    assert history == source_history
    by_identifier = served.get("/patients?identifier=nhs|9434765919", headers=admin).json
    assert [p["id"] for p in by_identifier["items"]] == [identified["id"]]
    access_log = served.get(f"/patients/{identified['id']}/access-log", headers=admin).json
    assert "patient.list" in {e["action"] for e in access_log["items"]}  # the disclosures moved
    served.set_cookie(COOKIE, browser.get_cookie(COOKIE).value)
    assert served.get("/me").json["username"] == "clinician"
    served.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {accounts['admin'].token}"
    assert new_patient(served, name="After the move")["id"] > purged["id"]


def test_every_table_is_copied_or_set_by_the_copy() -> None:
    """A table added later cannot be left behind by the upgrade path unnoticed."""
    assert {*copy.COPIED_TABLES, *copy.DERIVED_TABLES} == set(Base.metadata.tables.values())
    assert len(copy.COPIED_TABLES) + len(copy.DERIVED_TABLES) == len(Base.metadata.tables)


def test_copy_refuses_a_target_that_is_not_empty(
    client: FlaskClient, runner: CliRunner, target_url: str, target_engine: Engine
) -> None:
    new_patient(client)
    assert _copy(runner, target_url)[0] == 0
    before = _audit_tail(target_engine)
    new_patient(client, name="Second run")

    exit_code, output = _copy(runner, target_url)

    assert exit_code == 2
    assert "target database is not empty" in output
    assert _audit_tail(target_engine) == before


def test_copy_refuses_a_source_with_an_old_schema(tmp_path: Path, target_url: str) -> None:
    source = create_db_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(source, "0002")
    with pytest.raises(copy.CopyRefused, match="run `healthcare db upgrade`"):
        copy.copy_database(source, create_db_engine(target_url))
    source.dispose()


def test_a_copy_that_differs_from_its_source_is_reported(
    client: FlaskClient,
    engine: Engine,
    target_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new_patient(client)
    faithful = copy._copy_rows

    def losing_the_trail(reading, writing, table) -> None:
        if table is not audit_events:
            faithful(reading, writing, table)

    monkeypatch.setattr(copy, "_copy_rows", losing_the_trail)
    with pytest.raises(copy.CopyRefused, match="does not match the source in: audit_events"):
        copy.copy_database(engine, target_engine)


def test_a_source_with_a_broken_audit_chain_is_reported(
    client: FlaskClient, engine: Engine, target_engine: Engine
) -> None:
    new_patient(client)
    new_patient(client)
    with audit_guard_lifted(engine) as conn:
        conn.execute(update(audit_events).where(audit_events.c.id == 1).values(detail="edited"))

    with pytest.raises(copy.CopyRefused, match="audit trail is broken at row 1"):
        copy.copy_database(engine, target_engine)
