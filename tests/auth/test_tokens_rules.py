"""API tokens, called on the service: what a new token is, how revoking and expiry apply at
their exact moment, and why a token is turned away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update

from healthcare import clock
from healthcare.auth import tokens
from healthcare.auth.access import Actor, Role
from healthcare.db.database import Database
from healthcare.db.models import api_tokens, users
from healthcare.errors import Conflict, Forbidden, NotFound
from tests.conftest import Account, FakeClock, audit_rows

SHA256_OF_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.fixture
def admin_actor(accounts: dict[str, Account]) -> Actor:
    return accounts["admin"].actor()


def _check(db: Database, token: str) -> tuple[Actor | None, str]:
    return tokens.actor_for_token(db, token, "10.1.1.1", "req-5")


def test_a_token_is_stored_as_its_sha256() -> None:
    assert tokens.digest("abc") == SHA256_OF_ABC


def test_a_new_token_is_described_once_with_its_secret(
    db: Database, admin_actor: Actor, fake_clock: FakeClock
) -> None:
    made = tokens.create_token(db, admin_actor, "viewer", "reports", expires_in_days=2)
    secret = made.pop("token")
    assert secret.startswith("hct_")
    assert len(secret) == len("hct_") + 43  # 32 random bytes, URL-safe base64
    now = fake_clock.now
    assert made == {
        "id": made["id"],
        "username": "viewer",
        "label": "reports",
        "created_at": now.isoformat(timespec="microseconds")[:-6] + "Z",
        "expires_at": (now + timedelta(days=2)).isoformat(timespec="microseconds")[:-6] + "Z",
        "revoked_at": None,
        "state": "active",
        "created_by": admin_actor.username,
    }
    [listed] = [t for t in tokens.list_tokens(db, admin_actor) if t["id"] == made["id"]]
    assert listed == made
    [row] = audit_rows(db, action="token.create")
    detail = f"user=viewer label=reports on behalf of viewer id={made['id']}"
    assert (row["detail"], row["outcome"]) == (detail, "success")


def test_a_token_asked_for_without_a_lifetime_lasts_the_default(
    db: Database, admin_actor: Actor, fake_clock: FakeClock
) -> None:
    made = tokens.create_token(db, admin_actor, "viewer", "default")
    lifetime = timedelta(days=tokens.DEFAULT_LIFETIME_DAYS)
    assert made["expires_at"] == clock.rfc3339(fake_clock.now + lifetime)
    fake_clock.advance(days=tokens.DEFAULT_LIFETIME_DAYS, seconds=-1)
    assert _check(db, made["token"])[1] == "valid"
    fake_clock.advance(seconds=2)
    db.credentials.clear()
    assert _check(db, made["token"])[0] is None


def test_tokens_are_made_only_for_enabled_users_that_exist(
    db: Database, engine: Engine, admin_actor: Actor
) -> None:
    with pytest.raises(NotFound, match=r"^No user named 'ghost'\.$"):
        tokens.create_token(db, admin_actor, "ghost", "x")
    with engine.begin() as conn:
        conn.execute(
            update(users).where(users.c.username == "viewer").values(disabled_at=datetime.now(UTC))
        )
    with pytest.raises(Conflict, match=r"^User 'viewer' is disabled\.$"):
        tokens.create_token(db, admin_actor, "viewer", "x")


@pytest.mark.parametrize("role", ["viewer", "clinician"])
def test_only_an_admin_manages_tokens(
    db: Database, accounts: dict[str, Account], role: str
) -> None:
    actor = accounts[role].actor()
    with pytest.raises(Forbidden):
        tokens.create_token(db, actor, "viewer", "x")
    with pytest.raises(Forbidden):
        tokens.list_tokens(db, actor)
    with pytest.raises(Forbidden):
        tokens.revoke_token(db, actor, 1)
    denied = [row["detail"] for row in audit_rows(db, action="access.denied")]
    assert denied == ["token.create", "token.list", "token.revoke"]


def test_a_token_expires_at_its_moment(
    db: Database, admin_actor: Actor, fake_clock: FakeClock
) -> None:
    made = tokens.create_token(db, admin_actor, "viewer", "day", expires_in_days=1)
    fake_clock.advance(days=1, microseconds=-1)
    assert _check(db, made["token"])[1] == "valid"
    assert tokens.list_tokens(db, admin_actor, "viewer")[-1]["state"] == "active"
    db.credentials.clear()
    fake_clock.advance(microseconds=1)
    assert _check(db, made["token"]) == (None, "expired token 'day' of viewer")
    assert tokens.list_tokens(db, admin_actor, "viewer")[-1]["state"] == "expired"


def test_revoking_keeps_the_first_moment_and_is_audited(
    db: Database, admin_actor: Actor, fake_clock: FakeClock
) -> None:
    made = tokens.create_token(db, admin_actor, "clinician", "sync")
    assert _check(db, made["token"])[1] == "valid"
    revoked = tokens.revoke_token(db, admin_actor, made["id"])
    assert revoked["state"] == "revoked"
    assert revoked["revoked_at"] == fake_clock.now.isoformat(timespec="microseconds")[:-6] + "Z"
    assert _check(db, made["token"]) == (None, "revoked token 'sync' of clinician")
    fake_clock.advance(hours=1)
    assert tokens.revoke_token(db, admin_actor, made["id"]) == revoked
    details = [row["detail"] for row in audit_rows(db, action="token.revoke")]
    assert details == [f"user=clinician label=sync id={made['id']}"] * 2
    with pytest.raises(NotFound, match=r"^No token with id 999999\.$"):
        tokens.revoke_token(db, admin_actor, 999999)


def test_a_listing_can_be_narrowed_to_one_user_and_is_in_creation_order(
    db: Database, admin_actor: Actor
) -> None:
    first = tokens.create_token(db, admin_actor, "clinician", "first")["id"]
    second = tokens.create_token(db, admin_actor, "clinician", "second")["id"]
    mine = tokens.list_tokens(db, admin_actor, "clinician")
    assert [(t["username"], t["label"]) for t in mine] == [
        ("clinician", "tests"), ("clinician", "first"), ("clinician", "second")]  # fmt: skip
    everyone = [t["id"] for t in tokens.list_tokens(db, admin_actor)]
    assert everyone == sorted(everyone)
    assert {first, second} < set(everyone)
    assert len(everyone) == 5
    assert [row["action"] for row in audit_rows(db, action="token.list")] == ["token.list"] * 2


def test_a_valid_token_stands_for_its_user(db: Database, accounts: dict[str, Account]) -> None:
    clinician = accounts["clinician"]
    actor, why = _check(db, clinician.token)
    assert why == "valid"
    with db.engine.connect() as conn:
        token_id = conn.execute(
            select(api_tokens.c.id).where(api_tokens.c.user_id == clinician.user_id)
        ).scalar_one()
    assert actor == Actor(clinician.user_id, "clinician", Role.CLINICIAN, "tests", "10.1.1.1",
                          "req-5", token_id=token_id)  # fmt: skip


def test_unknown_and_disabled_users_tokens_are_refused(
    db: Database, engine: Engine, accounts: dict[str, Account]
) -> None:
    assert _check(db, "hct_not-a-token") == (None, "unknown token")
    assert _check(db, "hct_not-a-token") == (None, "unknown token")  # the miss is cached too
    with engine.begin() as conn:
        conn.execute(
            update(users).where(users.c.username == "viewer").values(disabled_at=datetime.now(UTC))
        )
    db.credentials.clear()
    assert _check(db, accounts["viewer"].token) == (None, "token 'tests' of disabled user viewer")


def test_a_revocation_applies_at_once_in_this_process(
    db: Database, admin_actor: Actor, accounts: dict[str, Account]
) -> None:
    token = accounts["viewer"].token
    assert _check(db, token)[1] == "valid"  # now cached
    [listed] = tokens.list_tokens(db, admin_actor, "viewer")
    tokens.revoke_token(db, admin_actor, listed["id"])
    assert _check(db, token) == (None, "revoked token 'tests' of viewer")
