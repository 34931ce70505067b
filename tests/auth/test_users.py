"""Accounts: password rules and hashing, the admin API, the CLI, the first admin."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from healthcare.audit.pipeline import open_database
from healthcare.auth import users as users_module
from healthcare.auth.passwords import password_problem
from healthcare.auth.users import ensure_first_admin
from healthcare.cli import main
from healthcare.db.database import Database
from healthcare.db.models import users
from tests.conftest import audit_rows

GOOD = "amber lantern quietly 42"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short1!", "at least 12"),
        ("password1234", "commonly used"),
        ("Password123!", "commonly used"),
        ("1234567890123", "commonly used"),
        ("aaaaaaaaaaaaaaaa", "too few"),
        ("abababababababab", "too few"),
        ("x" * 257, "at most 256"),
        ("my-name-is-newcomer", "user name"),
    ],
)
def test_weak_passwords_are_refused(password: str, why: str) -> None:
    problem = password_problem(password, "newcomer")
    assert problem is not None
    assert why in problem


def test_a_decent_password_is_accepted() -> None:
    assert password_problem(GOOD, "newcomer") is None


def test_admin_creates_a_user_and_the_password_is_only_stored_hashed(
    client: FlaskClient, engine: Engine, db: Database
) -> None:
    response = client.post("/users", json={"username": " NewComer ", "role": "viewer",
                                            "password": GOOD})  # fmt: skip
    assert response.status_code == 201
    assert response.json["username"] == "newcomer"
    assert "password" not in response.get_data(as_text=True)
    with engine.connect() as conn:
        stored = conn.execute(
            select(users.c.password_hash).where(users.c.username == "newcomer")
        ).scalar_one()
    assert stored.startswith("scrypt:")
    assert GOOD not in stored
    listed = client.get("/users").get_data(as_text=True)
    assert "newcomer" in listed
    assert "scrypt" not in listed
    assert GOOD not in listed
    [created] = audit_rows(db, action="user.create")
    assert created["detail"] == "user=newcomer role=viewer"


def test_user_creation_refusals(client: FlaskClient) -> None:
    weak = client.post("/users", json={"username": "x1", "role": "viewer", "password": "short"})
    assert weak.status_code == 422
    assert "12" in weak.json["detail"]
    duplicate = client.post("/users", json={"username": "viewer", "role": "viewer",
                                             "password": GOOD})  # fmt: skip
    assert duplicate.status_code == 409
    for body in (
        {"username": "bad name", "role": "viewer", "password": GOOD},
        {"username": "ok", "role": "superuser", "password": GOOD},
        {"username": "ok", "role": "viewer"},
        {"username": "ok", "role": "viewer", "password": GOOD, "is_admin": True},
    ):
        assert client.post("/users", json=body).status_code == 422, body


def test_the_last_admin_cannot_be_demoted_or_disabled(client: FlaskClient) -> None:
    assert client.patch("/users/admin", json={"role": "viewer"}).status_code == 409
    assert client.post("/users/admin/disable").status_code == 409  # also: it is oneself
    assert client.patch("/users/clinician", json={"role": "admin"}).status_code == 200
    assert client.patch("/users/admin", json={"role": "viewer"}).status_code == 200


def test_nobody_disables_themselves(client_as: object, client: FlaskClient) -> None:
    client.patch("/users/clinician", json={"role": "admin"})
    response = client.post("/users/admin/disable")
    assert response.status_code == 409
    assert "your own account" in response.json["detail"]


def test_unknown_users_are_404(client: FlaskClient) -> None:
    assert client.post("/users/ghost/disable").status_code == 404
    assert client.patch("/users/ghost", json={"role": "viewer"}).status_code == 404


def test_cli_creates_lists_and_disables_users(runner: CliRunner, db: Database) -> None:
    created = runner.invoke(
        main, ["users", "create", "Nurse.Joy", "--role", "clinician", "--password-stdin"],
        input=GOOD + "\n",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "created nurse.joy (clinician)" in created.output
    listed = runner.invoke(main, ["users", "list"])
    assert "nurse.joy" in listed.output
    assert GOOD not in listed.output
    disabled = runner.invoke(main, ["users", "disable", "nurse.joy"])
    assert disabled.exit_code == 0, disabled.output
    assert "disabled" in runner.invoke(main, ["users", "list"]).output
    [row] = audit_rows(db, action="user.disable")
    assert row["username"].startswith("operator:")


def test_cli_prompts_for_the_password_twice(runner: CliRunner) -> None:
    result = runner.invoke(main, ["users", "create", "prompted", "--role", "viewer"],
                           input=f"{GOOD}\n{GOOD}\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert GOOD not in result.output


def test_cli_refuses_a_weak_password_and_a_bad_role(runner: CliRunner) -> None:
    weak = runner.invoke(main, ["users", "create", "weakling", "--role", "viewer",
                                "--password-stdin"], input="password123\n")  # fmt: skip
    assert weak.exit_code == 2
    assert "12 characters" in weak.output
    bad_role = runner.invoke(main, ["users", "create", "x", "--role", "root", "--password-stdin"],
                             input=GOOD + "\n")  # fmt: skip
    assert bad_role.exit_code == 2


def test_first_run_creates_admin_once(db: Database) -> None:
    generated = ensure_first_admin(db, None)
    assert generated is not None
    assert password_problem(generated, "admin") is None
    assert ensure_first_admin(db, None) is None  # users exist now


def test_two_processes_starting_at_once_make_one_admin(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both find no users and both try to insert `admin`: one admin results, and neither start
    fails. On PostgreSQL both transactions get as far as the insert (the unique name refuses
    the second); on SQLite the write lock puts the second after the first, which it then sees."""
    other = open_database(db.engine.url.render_as_string(hide_password=False))
    together = threading.Barrier(2, timeout=10)
    real_insert = users_module._insert_user

    def insert_together(*args: object, **kwargs: object) -> object:
        if db.dialect == "postgresql":
            together.wait()  # both have found no users inside their transactions
        return real_insert(*args, **kwargs)

    monkeypatch.setattr(users_module, "_insert_user", insert_together)
    try:
        with ThreadPoolExecutor(2) as pool:
            shown = list(pool.map(lambda d: ensure_first_admin(d, None), [db, other]))
    finally:
        other.dispose()
    assert sum(password is not None for password in shown) == 1
    with db.engine.connect() as conn:
        assert conn.execute(select(users.c.username)).scalars().all() == ["admin"]


def test_first_run_uses_the_given_password_and_returns_nothing_to_show(db: Database) -> None:
    assert ensure_first_admin(db, GOOD) is None
    with db.engine.connect() as conn:
        row = conn.execute(select(users.c.username, users.c.role)).one()
    assert tuple(row) == ("admin", "admin")


def test_first_run_refuses_a_weak_admin_password(db: Database) -> None:
    from healthcare.errors import Invalid

    with pytest.raises(Invalid):
        ensure_first_admin(db, "admin")


def test_cli_refuses_a_malformed_user_name_with_the_schemas_words(runner: CliRunner) -> None:
    result = runner.invoke(main, ["users", "create", "bad name!", "--role", "viewer",
                                  "--password-stdin"], input=GOOD + "\n")  # fmt: skip
    assert result.exit_code == 2
    assert "username: String should match pattern" in result.output


def test_the_operator_cannot_disable_the_last_active_admin(
    runner: CliRunner, client: FlaskClient
) -> None:
    """Not oneself (the operator is no user), yet still refused: no admin would be left."""
    refused = runner.invoke(main, ["users", "disable", "admin"])
    assert refused.exit_code != 0
    assert "last active admin" in refused.output
    assert client.get("/me").status_code == 200
    assert client.patch("/users/clinician", json={"role": "admin"}).status_code == 200
    allowed = runner.invoke(main, ["users", "disable", "admin"])
    assert allowed.exit_code == 0, allowed.output
    assert client.get("/me").status_code == 401
