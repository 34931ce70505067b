"""The brute-force brake: failed sign-ins are limited per account and per client address,
with the count kept in the database so that every server worker sees the same one."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

from healthcare import create_app
from healthcare.config import Settings
from healthcare.db.database import Database
from tests.auth.test_sessions import csrf_from, sign_in
from tests.conftest import TEST_PASSWORD, Account, FakeClock, audit_rows

WRONG = "not the right password"


def test_the_sixth_failure_in_a_row_is_refused_with_retry_after(
    app: OpenAPI, accounts: dict[str, Account], db: Database
) -> None:
    for _ in range(5):
        assert sign_in(app.test_client(), "viewer", WRONG).status_code == 401
    throttled = sign_in(app.test_client(), "viewer")  # even the right password waits
    assert throttled.status_code == 429
    retry_after = int(throttled.headers["Retry-After"])
    assert 14 * 60 < retry_after <= 15 * 60
    assert "Try again in 15 minute" in throttled.get_data(as_text=True)
    outcomes = [row["outcome"] for row in audit_rows(db, action="login.failure")]
    assert outcomes == ["failure"] * 5 + ["throttled"]


def test_the_limit_lifts_when_the_window_has_passed(
    app: OpenAPI, accounts: dict[str, Account], fake_clock: FakeClock
) -> None:
    for _ in range(5):
        sign_in(app.test_client(), "viewer", WRONG)
    fake_clock.advance(minutes=10)
    assert sign_in(app.test_client(), "viewer").status_code == 429
    fake_clock.advance(minutes=5, seconds=1)
    assert sign_in(app.test_client(), "viewer").status_code == 303


def test_other_accounts_are_not_held_up_by_one_under_attack(
    app: OpenAPI, accounts: dict[str, Account]
) -> None:
    for _ in range(5):
        sign_in(app.test_client(), "viewer", WRONG)
    assert sign_in(app.test_client(), "clinician").status_code == 303


def test_one_address_trying_many_accounts_is_limited(
    make_app: Callable[..., OpenAPI], accounts: dict[str, Account]
) -> None:
    app = make_app(login_max_failures_per_client=3)
    for name in ("alice", "bob", "carol"):
        assert sign_in(app.test_client(), name, WRONG).status_code == 401
    response = sign_in(app.test_client(), "admin")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


def _fail_to_sign_in(settings: Settings, username: str, times: int) -> list[int]:
    """In a server process of its own: ``times`` wrong passwords for ``username``."""
    app = create_app(settings)
    try:
        return [sign_in(app.test_client(), username, WRONG).status_code for _ in range(times)]
    finally:
        app.extensions["healthcare.db"].dispose()


def test_the_count_is_shared_by_every_worker(
    app: OpenAPI, settings: Settings, accounts: dict[str, Account]
) -> None:
    """Failures made in two other processes (each with memory of its own, as server workers
    have) hold up a sign-in in this one."""
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(2, maxtasksperchild=1) as workers:  # one task per process
        tries = [workers.apply_async(_fail_to_sign_in, (settings, "admin", n)) for n in (3, 2)]
        assert [attempt.get(timeout=120) for attempt in tries] == [[401] * 3, [401] * 2]
    assert sign_in(app.test_client(), "admin").status_code == 429


def test_throttled_attempts_do_not_extend_the_lock(
    app: OpenAPI, accounts: dict[str, Account], fake_clock: FakeClock
) -> None:
    """Only real failures count: knocking on a locked account keeps nobody out for longer."""
    for _ in range(5):
        assert sign_in(app.test_client(), "viewer", WRONG).status_code == 401
    fake_clock.advance(minutes=10)
    for _ in range(6):
        assert sign_in(app.test_client(), "viewer", WRONG).status_code == 429
    fake_clock.advance(minutes=5, seconds=1)
    assert sign_in(app.test_client(), "viewer").status_code == 303


def test_unknown_users_are_counted_like_real_ones(
    app: OpenAPI, accounts: dict[str, Account], db: Database
) -> None:
    for _ in range(5):
        assert sign_in(app.test_client(), "nobody-here", WRONG).status_code == 401
    assert sign_in(app.test_client(), "nobody-here", WRONG).status_code == 429
    failures = audit_rows(db, action="login.failure")
    assert {row["username"] for row in failures} == {"nobody-here"}


def test_the_answer_does_not_tell_which_part_was_wrong(
    app: OpenAPI, accounts: dict[str, Account], client: FlaskClient
) -> None:
    unknown = sign_in(app.test_client(), "nobody-here", WRONG).get_data(as_text=True)
    wrong = sign_in(app.test_client(), "viewer", WRONG).get_data(as_text=True)
    assert client.post("/users/clinician/disable").status_code == 200
    disabled = sign_in(app.test_client(), "clinician").get_data(as_text=True)
    message = "The user name or password is not right."
    assert message in unknown
    assert message in wrong
    assert message in disabled


def test_wrong_current_passwords_at_a_change_count_as_failed_sign_ins(
    client_as: Callable[[str], FlaskClient], accounts: dict[str, Account], db: Database
) -> None:
    """Issue 13, item 7: /me/password was an unlimited password oracle (8 tries, 8 x 422)."""
    viewer = client_as("viewer")
    guess = {"current_password": WRONG, "new_password": "a fresh passphrase 2026"}
    statuses = [viewer.post("/me/password", json=guess).status_code for _ in range(8)]
    assert statuses == [422] * 5 + [429] * 3
    refused = viewer.post("/me/password", json={**guess, "current_password": TEST_PASSWORD})
    assert refused.status_code == 429  # even the right one waits, as at sign-in
    assert int(refused.headers["Retry-After"]) > 0
    outcomes = [row["outcome"] for row in audit_rows(db, action="user.password_change")]
    assert outcomes == ["failure"] * 5 + ["throttled"] * 4
    assert sign_in(viewer.application.test_client(), "viewer").status_code == 429  # one budget


def test_the_password_page_answers_429_when_throttled(
    app: OpenAPI, accounts: dict[str, Account]
) -> None:
    browser = app.test_client()
    assert sign_in(browser, "viewer").status_code == 303
    for _ in range(5):
        sign_in(app.test_client(), "viewer", WRONG)
    form = {
        "csrf_token": csrf_from(browser, "/ui/account/password"),
        "current_password": TEST_PASSWORD,
        "new_password": "a fresh passphrase 2026",
        "confirm_password": "a fresh passphrase 2026",
    }
    page = browser.post("/ui/account/password", data=form)
    assert page.status_code == 429
    assert "Too many failed sign-ins" in page.get_data(as_text=True)
