"""Probes, the generated OpenAPI document and the self-hosted docs."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from openapi_spec_validator import validate
from sqlalchemy import Engine

from healthcare.db import migrate
from healthcare.draining import start_draining, stop_draining


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_reports_database_and_revision(client: FlaskClient, engine: Engine) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["schema_revision"] == migrate.head_revision()
    assert response.json["database"] == engine.dialect.name


def test_anonymous_readyz_says_only_up_or_down(anonymous: FlaskClient, engine: Engine) -> None:
    """Issue 13, item 11: the database kind and schema revision are for signed-in callers."""
    response = anonymous.get("/readyz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'old'")
        behind = anonymous.get("/readyz")
        assert behind.status_code == 503
        assert behind.json["detail"] == "The database schema is not current."
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"UPDATE alembic_version SET version_num = '{migrate.head_revision()}'"
            )


def test_readyz_is_503_when_schema_is_behind(client: FlaskClient, engine: Engine) -> None:
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'old'")
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.mimetype == "application/problem+json"
        assert "healthcare db upgrade" in response.json["detail"]
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"UPDATE alembic_version SET version_num = '{migrate.head_revision()}'"
            )


def test_a_draining_server_is_not_ready_but_still_serves(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A rolling update drains a replica before stopping it: the balancer's probe fails, the
    requests already on their way are still answered."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    port = client.application.extensions["healthcare.settings"].port
    start_draining(port)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["detail"] == "The server is draining: it is about to stop."
    assert client.get("/patients").status_code == 200
    start_draining(port + 1)
    stop_draining(port)
    assert client.get("/readyz").status_code == 200  # another port's draining is not this one's


def test_openapi_document_is_valid_3_1_and_generated_from_the_code(client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    assert document["openapi"].startswith("3.1")
    validate(document)
    paths = document["paths"]
    assert set(paths["/patients"]) >= {"get", "post"}
    assert set(paths["/patients/{patient_id}"]) >= {"get", "put", "patch", "delete"}
    assert "post" in paths["/patients/{patient_id}/restore"]
    assert "get" in paths["/patients/deleted"]
    schema = document["components"]["schemas"]["PatientInput"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["age"]["anyOf"][0]["maximum"] == 150


def test_docs_page_uses_only_local_assets(client: FlaskClient) -> None:
    page = client.get("/docs").text
    assert "http://" not in page
    assert "https://" not in page
    for asset in ["/docs/assets/css/swagger-ui.css", "/docs/assets/js/swagger-ui-bundle.js",
                  "/docs/init.js"]:  # fmt: skip
        assert asset in page
        response = client.get(asset)
        response.close()
        assert response.status_code == 200


def test_readyz_is_503_when_the_database_does_not_answer(make_app: Callable[..., OpenAPI]) -> None:
    app = make_app(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert "does not answer" in response.json["detail"]
