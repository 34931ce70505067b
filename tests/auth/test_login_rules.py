"""Signing in, called on the service: who comes back, what a failure records, and exactly how
long the brake holds (a stopped clock makes every wait an exact number of seconds)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from healthcare.auth.access import Actor, Role
from healthcare.auth.login import LoginPolicy, sign_in
from healthcare.db.database import Database
from healthcare.errors import SignInFailed, TooManyAttempts
from tests.conftest import TEST_PASSWORD, FakeClock, add_user, audit_rows

WRONG = "not the right password"
POLICY = LoginPolicy(failures_per_account=2, failures_per_client=3, window=timedelta(minutes=10))


def _attempt(
    db: Database, username: str, password: str = TEST_PASSWORD, client: str = "c1"
) -> Actor:
    return sign_in(db, POLICY, username, password, client, "req-9")


def _fail(db: Database, username: str = "casey", client: str = "c1") -> None:
    with pytest.raises(SignInFailed):
        _attempt(db, username, WRONG, client)


def _wait(db: Database, username: str = "casey", client: str = "c1") -> TooManyAttempts:
    with pytest.raises(TooManyAttempts) as refused:
        _attempt(db, username, client=client)
    return refused.value


def _failures(db: Database) -> list[tuple]:
    return [
        (row["username"], row["outcome"], row["detail"], row["client"], row["request_id"])
        for row in audit_rows(db, action="login.failure")
    ]


@pytest.fixture
def casey(engine: Engine) -> int:
    return add_user(engine, "casey", "clinician")


def test_the_right_password_gives_the_user_as_an_actor(db: Database, casey: int) -> None:
    actor = _attempt(db, "  Casey ")
    assert actor == Actor(casey, "casey", Role.CLINICIAN, client="c1", request_id="req-9")
    assert _failures(db) == []


def test_a_name_longer_than_the_column_is_cut_like_the_stored_one(
    db: Database, engine: Engine
) -> None:
    add_user(engine, "a" * 64, "viewer")
    assert _attempt(db, "A" * 70).username == "a" * 64


@pytest.mark.parametrize(
    ("username", "disabled", "recorded"),
    [
        ("casey", False, ("casey", "failure", None, "c1", "req-9")),
        ("ghost", False, ("ghost", "failure", None, "c1", "req-9")),
        ("casey", True, ("casey", "failure", "disabled user", "c1", "req-9")),
        ("   ", False, (None, "failure", None, "c1", "req-9")),
    ],
)
def test_a_failure_is_recorded_before_the_answer(
    db: Database, engine: Engine, username: str, disabled: bool, recorded: tuple
) -> None:
    add_user(engine, "casey", "clinician", disabled=disabled)
    password = TEST_PASSWORD if disabled else WRONG
    with pytest.raises(SignInFailed, match=r"^The user name or password is not right\.$"):
        _attempt(db, username, password)
    assert _failures(db) == [recorded]


@pytest.mark.usefixtures("casey")
def test_the_limit_counts_from_the_limit_th_latest_failure(
    db: Database, fake_clock: FakeClock
) -> None:
    _fail(db)
    fake_clock.advance(minutes=4)
    _fail(db)  # one failure in the window is not yet the limit
    fake_clock.advance(minutes=1)
    refused = _wait(db)
    assert refused.retry_after == 5 * 60  # the first failure leaves the window in 5 minutes
    assert str(refused) == "Too many failed sign-ins. Try again in 5 minute(s)."
    fake_clock.advance(minutes=4, seconds=59)
    assert _wait(db).retry_after == 1
    assert str(_wait(db)).endswith("in 1 minute(s).")
    fake_clock.advance(seconds=1)
    assert _attempt(db, "casey").user_id is not None
    outcomes = [outcome for _, outcome, *_ in _failures(db)]
    assert outcomes == ["failure", "failure", "throttled", "throttled", "throttled"]


@pytest.mark.usefixtures("casey")
def test_throttled_attempts_do_not_extend_the_wait(db: Database, fake_clock: FakeClock) -> None:
    _fail(db)
    _fail(db)
    for _ in range(3):
        fake_clock.advance(minutes=3)
        _wait(db)
        db.pending_audit.flush()
    fake_clock.advance(minutes=1, seconds=1)
    assert _attempt(db, "casey").username == "casey"


def test_one_client_is_limited_across_accounts(
    db: Database, engine: Engine, fake_clock: FakeClock
) -> None:
    for name in ("ann", "bob", "cid"):
        add_user(engine, name, "viewer")
        _fail(db, name, client="attacker")
        fake_clock.advance(minutes=1)
    add_user(engine, "dee", "viewer")
    assert _wait(db, "dee", client="attacker").retry_after == 7 * 60
    assert _attempt(db, "dee", client="elsewhere").username == "dee"


@pytest.mark.usefixtures("casey")
def test_the_longer_of_the_two_waits_applies(
    db: Database, engine: Engine, fake_clock: FakeClock
) -> None:
    add_user(engine, "ann", "viewer")
    add_user(engine, "bob", "viewer")
    _fail(db, "ann", client="c2")
    fake_clock.advance(minutes=2)
    _fail(db, "casey")
    fake_clock.advance(minutes=1)
    _fail(db, "bob")
    fake_clock.advance(minutes=1)
    _fail(db, "ann")  # ann's second failure; c1's third
    fake_clock.advance(minutes=1)
    assert _wait(db, "ann").retry_after == 7 * 60  # c1's limit holds longer than ann's
    assert _wait(db, "ann", client="c3").retry_after == 5 * 60
    assert _attempt(db, "casey", client="c3").username == "casey"
