"""The generated first admin password (issue 13, item 5): handed over in a 0600 file, never in
the log, and nothing but changing it is allowed until it is changed, in the API and the UI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from healthcare.auth.access import Actor
from healthcare.auth.tokens import create_token
from healthcare.auth.users import ensure_first_admin
from healthcare.cli import FIRST_ADMIN_PASSWORD_FILE, _first_admin
from healthcare.config import Settings
from healthcare.db.database import Database
from healthcare.db.models import users
from tests.auth.test_sessions import csrf_from, sign_in
from tests.conftest import bearer

NEW_PASSWORD = "a brand new passphrase 77"


@pytest.fixture
def first_password(db: Database) -> str:
    generated = ensure_first_admin(db, None)
    assert generated is not None
    return generated


def test_the_generated_password_goes_to_a_private_file_not_the_log(
    db: Database, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _first_admin(db, settings)
    handed_over = Path(settings.data_dir) / FIRST_ADMIN_PASSWORD_FILE
    password = handed_over.read_text().strip()
    assert stat.S_IMODE(handed_over.stat().st_mode) == 0o600
    logged = capsys.readouterr().out
    assert password not in logged
    assert f"its password is in {handed_over}" in json.loads(logged)["message"]


def test_only_a_generated_password_must_be_changed(db: Database) -> None:
    assert ensure_first_admin(db, "a chosen first password 9") is None
    with db.engine.connect() as conn:
        assert conn.execute(select(users.c.must_change_password)).scalar() is False


def test_the_api_refuses_everything_but_the_change_until_it_is_made(
    db: Database, anonymous: FlaskClient, first_password: str
) -> None:
    token = bearer(create_token(db, Actor.operator(), "admin", "first")["token"])
    for path in ("/patients", "/patients/1", "/users", "/audit"):
        refused = anonymous.get(path, headers=token)
        assert refused.status_code == 403, path
        assert refused.json["title"] == "Password change required"
    assert anonymous.get("/me", headers=token).status_code == 200
    changed = anonymous.post(
        "/me/password",
        headers=token,
        json={"current_password": first_password, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204
    assert anonymous.get("/patients", headers=token).status_code == 200
    with db.engine.connect() as conn:
        assert conn.execute(select(users.c.must_change_password)).scalar() is False


def test_the_ui_sends_the_user_to_the_password_page_first(
    anonymous: FlaskClient, first_password: str
) -> None:
    assert sign_in(anonymous, "admin", first_password).status_code == 303
    page = anonymous.get("/ui/patients")
    assert page.status_code == 303
    assert page.headers["Location"].endswith("/ui/account/password")
    form = {
        "csrf_token": csrf_from(anonymous, "/ui/account/password"),
        "current_password": first_password,
        "new_password": NEW_PASSWORD,
        "confirm_password": NEW_PASSWORD,
    }
    assert anonymous.post("/ui/account/password", data=form).status_code == 303
    assert anonymous.get("/ui/patients").status_code == 200
