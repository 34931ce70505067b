"""API tokens: shown once, stored hashed, named, revocable, expiring; the CLI for them."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from healthcare import clock
from healthcare.auth.tokens import DEFAULT_LIFETIME_DAYS, digest
from healthcare.cli import main
from healthcare.config import Settings
from healthcare.db.database import CREDENTIALS_TTL_SECONDS, Database
from healthcare.db.models import api_tokens, users
from tests.conftest import FakeClock, another_server_process, audit_rows, bearer


def test_a_token_is_shown_once_and_stored_only_as_a_hash(
    client: FlaskClient, anonymous: FlaskClient, engine: Engine
) -> None:
    created = client.post("/tokens", json={"username": "viewer", "label": "reports"})
    assert created.status_code == 201
    token = created.json["token"]
    assert token.startswith("hct_")
    assert len(token) > 40
    with engine.connect() as conn:
        stored = conn.execute(select(api_tokens.c.token_hash)).scalars().all()
    assert digest(token) in stored
    assert token not in stored
    assert token not in client.get("/tokens").get_data(as_text=True)
    me = anonymous.get("/me", headers=bearer(token))
    assert me.json == {"username": "viewer", "role": "viewer", "token_label": "reports"}


def test_a_revoked_token_stops_working_at_once(
    client: FlaskClient, anonymous: FlaskClient, db: Database
) -> None:
    created = client.post("/tokens", json={"username": "clinician", "label": "sync"}).json
    assert anonymous.get("/patients", headers=bearer(created["token"])).status_code == 200
    revoked = client.delete(f"/tokens/{created['id']}")
    assert revoked.status_code == 200
    assert revoked.json["state"] == "revoked"
    assert anonymous.get("/patients", headers=bearer(created["token"])).status_code == 401
    assert client.delete(f"/tokens/{created['id']}").status_code == 200  # idempotent
    assert client.delete("/tokens/999999").status_code == 404
    [row] = audit_rows(db, action="token.revoke")[:1]
    assert "label=sync" in row["detail"]


def test_a_token_expires(
    client: FlaskClient, anonymous: FlaskClient, fake_clock: FakeClock
) -> None:
    created = client.post(
        "/tokens", json={"username": "viewer", "label": "week", "expires_in_days": 7}
    ).json
    fake_clock.advance(days=6, hours=23)
    assert anonymous.get("/patients", headers=bearer(created["token"])).status_code == 200
    fake_clock.advance(hours=2)
    response = anonymous.get("/patients", headers=bearer(created["token"]))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    [listed] = [t for t in client.get("/tokens").json["items"] if t["label"] == "week"]
    assert listed["state"] == "expired"


def test_token_requests_are_checked(client: FlaskClient) -> None:
    assert client.post("/tokens", json={"username": "ghost", "label": "x"}).status_code == 404
    client.post("/users/viewer/disable")
    assert client.post("/tokens", json={"username": "viewer", "label": "x"}).status_code == 409
    for body in (
        {"username": "clinician", "label": ""},
        {"username": "clinician", "label": "x", "expires_in_days": 0},
        {"username": "clinician", "label": "x", "expires_in_days": 4000},
        {"username": "clinician", "label": "nul\u0000byte"},
    ):
        assert client.post("/tokens", json=body).status_code == 422, body


@pytest.mark.usefixtures("accounts")
def test_cli_creates_lists_and_revokes_tokens(runner: CliRunner, anonymous: FlaskClient) -> None:
    created = runner.invoke(main, ["tokens", "create", "viewer", "--label", "laptop",
                                   "--expires-in", "30"])  # fmt: skip
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("hct_")
    assert "cannot be shown again" in created.stderr
    assert anonymous.get("/me", headers=bearer(token)).status_code == 200
    listed = runner.invoke(main, ["tokens", "list", "viewer"])
    assert "laptop" in listed.output
    assert token not in listed.output
    token_id = next(line.split()[0] for line in listed.output.splitlines() if "laptop" in line)
    revoked = runner.invoke(main, ["tokens", "revoke", token_id])
    assert revoked.exit_code == 0, revoked.output
    time.sleep(CREDENTIALS_TTL_SECONDS)  # the server is another process: within a second
    assert anonymous.get("/me", headers=bearer(token)).status_code == 401


@pytest.mark.usefixtures("accounts")
def test_cli_refuses_unknown_users_and_bad_expiry(runner: CliRunner) -> None:
    assert runner.invoke(main, ["tokens", "create", "ghost"]).exit_code == 2
    assert runner.invoke(main, ["tokens", "create", "viewer", "--expires-in", "0"]).exit_code == 2
    assert runner.invoke(main, ["tokens", "revoke", "424242"]).exit_code == 2


def test_other_processes_stop_honouring_a_revoked_token_within_a_second(
    client: FlaskClient, settings: Settings
) -> None:
    created = client.post("/tokens", json={"username": "viewer", "label": "elsewhere"}).json
    with another_server_process(settings) as other_worker:
        assert other_worker("GET", "/me", bearer(created["token"])) == 200  # now in its cache
        client.delete(f"/tokens/{created['id']}")
        assert client.get("/me", headers=bearer(created["token"])).status_code == 401  # here
        time.sleep(CREDENTIALS_TTL_SECONDS)  # the documented bound for other processes
        assert other_worker("GET", "/me", bearer(created["token"])) == 401


def test_every_audit_row_of_a_token_call_names_the_token(
    client: FlaskClient, anonymous: FlaskClient, db: Database
) -> None:
    """Issue 13, item 4: a label says little (any label, any number of times); the id is exact."""
    made = client.post("/tokens", json={"username": "viewer", "label": "reports"}).json
    pid = client.post("/patients", json={"name": "Token Traced", "age": 50}).json["id"]
    as_token = bearer(made["token"])
    assert anonymous.get(f"/patients/{pid}", headers=as_token).status_code == 200
    assert anonymous.get("/patients", headers=as_token).status_code == 200
    assert anonymous.get(f"/patients/{pid}/history", headers=as_token).status_code in {200, 404}
    assert anonymous.delete(f"/patients/{pid}", headers=as_token).status_code == 403
    rows = [row for row in audit_rows(db) if row["username"] == "viewer"]
    assert [row["action"] for row in rows][:2] == ["patient.read", "patient.list"]
    assert "access.denied" in {row["action"] for row in rows}
    assert {row["token_id"] for row in rows} == {made["id"]}
    assert (
        client.get("/audit", query_string={"username": "viewer"}).json["items"][0]["token_id"]
        == made["id"]
    )


def test_a_label_names_one_token_of_a_user(client: FlaskClient, engine: Engine) -> None:
    assert client.post("/tokens", json={"username": "viewer", "label": "sync"}).status_code == 201
    again = client.post("/tokens", json={"username": "viewer", "label": "sync"})
    assert again.status_code == 409
    assert "labelled 'sync' already" in again.json["detail"]
    other_user = client.post("/tokens", json={"username": "clinician", "label": "sync"})
    assert other_user.status_code == 201
    with engine.connect() as conn:
        viewer = conn.execute(select(users.c.id).where(users.c.username == "viewer")).scalar()
    duplicate = api_tokens.insert().values(
        user_id=viewer, label="sync", token_hash="x" * 64, created_at=clock.utc_now()
    )
    with pytest.raises(IntegrityError), engine.begin() as conn:  # the database holds it too
        conn.execute(duplicate)


def test_a_token_made_for_someone_else_says_who_made_it(
    client: FlaskClient, db: Database, runner: CliRunner
) -> None:
    for_viewer = client.post("/tokens", json={"username": "viewer", "label": "by-admin"}).json
    own = client.post("/tokens", json={"username": "admin", "label": "mine"}).json
    assert (for_viewer["created_by"], own["created_by"]) == ("admin", None)
    made = runner.invoke(main, ["tokens", "create", "viewer", "--label", "by-operator"])
    assert made.exit_code == 0, made.output
    listed = {t["label"]: t["created_by"] for t in client.get("/tokens").json["items"]}
    assert listed["by-admin"] == "admin"
    assert listed["mine"] is None
    assert listed["by-operator"].startswith("operator:")
    details = [row["detail"] for row in audit_rows(db, action="token.create")]
    assert details[0] == f"user=viewer label=by-admin on behalf of viewer id={for_viewer['id']}"
    assert details[1] == f"user=admin label=mine id={own['id']}"


def test_a_token_asked_for_without_a_lifetime_lasts_90_days(
    client: FlaskClient, anonymous: FlaskClient, fake_clock: FakeClock
) -> None:
    made = client.post("/tokens", json={"username": "viewer", "label": "default"}).json
    assert made["expires_at"] is not None
    assert DEFAULT_LIFETIME_DAYS == 90
    fake_clock.advance(days=89, hours=23)
    assert anonymous.get("/patients", headers=bearer(made["token"])).status_code == 200
    fake_clock.advance(hours=1, seconds=CREDENTIALS_TTL_SECONDS + 1)
    assert anonymous.get("/patients", headers=bearer(made["token"])).status_code == 401
