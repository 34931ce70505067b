"""Likely duplicates: the scoring, the refusal on create and edit, "who might this be?"."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, func, select

from healthcare.audit import trail
from healthcare.auth.access import Actor
from healthcare.db import group_commit
from healthcare.db.database import Database
from healthcare.db.engine import write_transaction
from healthcare.db.group_commit import GroupCommit
from healthcare.db.models import patients
from healthcare.errors import Conflict, PossibleDuplicates
from healthcare.patients import service
from healthcare.patients.matching import (
    THRESHOLD,
    Demographics,
    _one_slip,
    name_key,
    ranked,
    score,
    within_a_slip,
)
from healthcare.patients.schemas import PatientIn
from healthcare.patients.seed import insert_with_identity, synthetic_patients
from tests.conftest import audit_rows, new_patient, queued_behind_a_held_writer

ASHA = Demographics("Verma", "Asha", date(1990, 3, 4), "079460958", "asha@example.org")


@pytest.mark.parametrize(
    "other",
    [
        Demographics("Vrema", "Asha", date(1990, 3, 4)),  # typo, same birth date
        Demographics("Asha", "Verma", date(1990, 3, 4)),  # transposed
        Demographics("Verma", "Asha", None, "079460958"),  # no birth date, same phone
        Demographics("Verma", "Asha", date(1990, 4, 3)),  # day and month swapped
        Demographics("Verma", "Asha", date(1991, 3, 4), email="asha@example.org"),
    ],
)
def test_the_same_person_entered_differently_is_likely(other: Demographics) -> None:
    assert score(ASHA, other) >= THRESHOLD
    assert score(other, ASHA) >= THRESHOLD


def test_nicknames_count_as_the_same_given_name() -> None:
    william = Demographics("Jones", "William", date(1950, 1, 1))
    assert score(william, Demographics("Jones", "Bill", date(1950, 1, 1))) >= THRESHOLD


@pytest.mark.parametrize(
    "other",
    [
        Demographics("Verma", "Asha", date(1971, 8, 19)),  # namesake, another birth date
        Demographics("Okafor", "Ngozi", date(1990, 3, 4)),  # same birthday, another name
        Demographics("Verma", "Asha"),  # a name alone is not enough
    ],
)
def test_other_people_are_not_likely(other: Demographics) -> None:
    assert score(ASHA, other) < THRESHOLD


def test_the_phonetic_block_holds_transposed_names_and_skips_other_scripts() -> None:
    assert name_key("Verma", "Asha Rani") == name_key("Asha", "Verma")
    assert name_key("王小明", None) is None


ASHA_BODY = {"name": "Asha Verma", "date_of_birth": "1990-03-04", "phone": "020 7946 0958"}


def test_creating_a_likely_duplicate_is_refused_with_the_candidates(
    client: FlaskClient, db: Database
) -> None:
    first = new_patient(client, **ASHA_BODY, age=None)
    again = {"family_name": "Vrema", "given_names": "Asha", "date_of_birth": "1990-03-04"}
    response = client.post("/patients", json=again)
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    [candidate] = response.json["candidates"]
    assert candidate["id"] == first["id"]
    assert candidate["mrn"] == first["mrn"]
    assert candidate["href"] == f"/patients/{first['id']}"
    assert candidate["reasons"] == ["name", "date of birth"]
    assert first["mrn"] in response.json["detail"]
    refused = audit_rows(db, action="patient.create", outcome="possible_duplicate")
    assert len(refused) == 1


def test_a_confirmed_new_patient_is_created_and_the_confirmation_audited(
    client: FlaskClient, db: Database
) -> None:
    new_patient(client, **ASHA_BODY, age=None)
    response = client.post("/patients?confirm_not_duplicate=true", json=ASHA_BODY)
    assert response.status_code == 201
    created = audit_rows(db, action="patient.create", patient_id=response.json["id"])
    assert created[0]["detail"] == "confirmed not a duplicate"


def test_an_edit_that_makes_a_likely_duplicate_is_refused_unless_confirmed(
    client: FlaskClient,
) -> None:
    new_patient(client, **ASHA_BODY, age=None)
    other = new_patient(client, name="Asha Verma", date_of_birth="1971-01-01", age=None)
    url = f"/patients/{other['id']}"
    assert client.patch(url, json={"date_of_birth": "1990-03-04"}).status_code == 409
    assert client.patch(url, json={"notes": "Prefers mornings."}).status_code == 200
    confirmed = client.patch(
        f"{url}?confirm_not_duplicate=true", json={"date_of_birth": "1990-03-04"}
    )
    assert confirmed.status_code == 200
    assert client.patch(url, json={"notes": "Changed again."}).status_code == 200


def test_deleted_patients_are_not_candidates(client: FlaskClient) -> None:
    first = new_patient(client, **ASHA_BODY, age=None)
    client.delete(f"/patients/{first['id']}")
    assert client.post("/patients", json=ASHA_BODY).status_code == 201


def test_who_might_this_be(client_as: Callable[[str], FlaskClient], db: Database) -> None:
    first = new_patient(client_as("clinician"), **ASHA_BODY, age=None)
    viewer = client_as("viewer")
    found = viewer.post("/patients/matches", json={"name": "Asha Verma", "phone": "07946 0958"})
    assert found.status_code == 200
    assert [c["id"] for c in found.json["items"]] == [first["id"]]
    assert viewer.post("/patients/matches", json={"name": "Ngozi Okafor"}).json["items"] == []
    assert len(audit_rows(db, action="patient.match", username="viewer")) == 2


@pytest.mark.parametrize("body", [{}, {"phone": "x"}, {"unknown": 1}])
def test_who_might_this_be_needs_valid_demographics(client: FlaskClient, body: dict) -> None:
    assert client.post("/patients/matches", json=body).status_code == 422


def test_the_openapi_document_describes_the_contract(client: FlaskClient) -> None:
    document = client.get("/openapi.json").json
    create = document["paths"]["/patients"]["post"]
    assert "confirm_not_duplicate" in {p["name"] for p in create["parameters"]}
    assert "409" in create["responses"]
    assert "candidates" in document["components"]["schemas"]["DuplicateProblem"]["properties"]
    assert "/patients/matches" in document["paths"]
    assert "/patients/{patient_id}/history/{version}" in document["paths"]


@given(st.dates(date(1000, 1, 1), date(9998, 12, 31)), st.data())
def test_the_dates_within_a_slip_are_exactly_those_one_slip_away(
    born: date, data: st.DataObject
) -> None:
    text = born.isoformat()
    position = data.draw(st.sampled_from([i for i, ch in enumerate(text) if ch.isdigit()]))
    mutated = text[:position] + data.draw(st.sampled_from("0123456789")) + text[position + 1 :]
    nearby = [born + timedelta(days=data.draw(st.integers(-800, 800)))]
    with suppress(ValueError):
        nearby.append(date.fromisoformat(mutated))
    with suppress(ValueError):
        nearby.append(date(born.year + 1, born.month, born.day))
    with suppress(ValueError):
        nearby.append(date(born.year, born.day, born.month))
    slips = within_a_slip(born)
    for other in nearby:
        assert (other in slips) == (other == born or _one_slip(born, other)), other


def _entered_again(row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A stored patient as someone might enter them again: birth date kept, slipped, changed
    or left out; a typo in the family name; the phone kept or not."""
    values = {k: row[k] for k in ("family_name", "given_names", "date_of_birth", "phone")}
    born = row["date_of_birth"]
    change = rng.choice(["keep", "slip", "other", "none"])
    if born and change == "slip":
        values["date_of_birth"] = rng.choice(within_a_slip(born))
    elif change == "other":
        values["date_of_birth"] = date(1930, 1, 1) + timedelta(days=rng.randrange(34_000))
    elif change == "none":
        values["date_of_birth"] = None
    if rng.random() < 0.3 and len(row["family_name"]) > 3:
        family = row["family_name"]
        values["family_name"] = family[:2] + family[3] + family[2] + family[4:]
    if rng.random() < 0.5:
        values["phone"] = None
    return values


def _shares_a_block(a: Demographics, b: Demographics) -> bool:
    """The blocks as matching.py describes them: something exact in common."""
    return bool(
        (name_key(a.family, a.given) and name_key(a.family, a.given) == name_key(b.family, b.given))
        or (a.born and a.born == b.born)
        or (a.phone_key and a.phone_key == b.phone_key)
        or (a.email and a.email == b.email)
        or set(a.identifiers) & set(b.identifiers)
    )


def test_the_check_finds_every_likely_duplicate_that_shares_a_block(db: Database) -> None:
    """Leaving out of a name's block the people born on a date no slip away (and skipping
    the check when nothing but a name is known) loses nothing: the check answers what
    scoring every patient who shares a block answers."""
    rng = random.Random(7)
    with write_transaction(db.engine) as conn:
        insert_with_identity(conn, list(synthetic_patients(600, rng)), "MRN")
    with db.engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(select(patients)).mappings()]
    everyone = [(row["id"], Demographics.of(row)) for row in rows]
    flagged = 0
    for row in rng.sample(rows, 200):
        values = _entered_again(row, rng)
        wanted = Demographics.of(values)
        expected = ranked(wanted, [(i, p) for i, p in everyone if _shares_a_block(wanted, p)])
        with db.engine.connect() as conn:
            found = [(c["id"], c["score"]) for c in service.likely_duplicates(conn, values, None)]
        assert found == expected, values
        flagged += bool(found)
    assert flagged > 50  # the sample holds duplicates to find, not only people with none


@contextmanager
def _outcome_hooks(conn: Connection) -> Iterator[None]:
    """What the group commit's writer gives each transaction: a list of outcome callbacks
    (``group_commit.when_done``), called here as if it committed."""
    conn.info[group_commit._OUTCOME_HOOKS] = hooks = []
    yield
    for committed, _failed in hooks:
        committed()


@contextmanager
def _creating(db: Database, conn: Connection, data: PatientIn) -> Iterator[dict[str, Any]]:
    """A create in a write transaction, as the group commit runs it: the duplicate check and
    the insert, then, as the block ends, its audit event joins the chain (the chain's head is
    held from there to the commit)."""
    event = Actor.operator().event("patient.create")
    request = service.NewRequest(
        data, service.stored_values(data), event, False, "MRN", db.pending_audit
    )
    with trail.batched(conn), _outcome_hooks(conn):
        [answer] = service.create_each(conn, [request])
        if isinstance(answer, Exception):
            raise answer
        yield answer


def test_the_same_person_created_at_once_by_two_servers_is_refused_once(db: Database) -> None:
    """Two server processes (or servers) on one PostgreSQL create the same person at the same
    instant: the second check waits for the first transaction, sees its patient, refuses.
    Without the block locks both checks ran before either insert committed, and both were
    stored."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: its write lock already orders the checks")
    data = PatientIn.model_validate(
        {"name": "Asha Verma", "date_of_birth": "1990-03-04", "phone": "079460958"}
    )
    outcome: list[str] = []

    def second_server() -> None:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '20s'")
            try:
                with _creating(db, conn, data):
                    outcome.append("created")
            except PossibleDuplicates:
                outcome.append("refused")

    with db.engine.begin() as first, _creating(db, first, data):
        other = threading.Thread(target=second_server)
        other.start()
        other.join(1.0)
        assert other.is_alive(), f"the second check did not wait for the first: {outcome}"
    other.join(30)
    assert outcome == ["refused"]
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(patients)).scalar() == 1


def test_creating_somebody_else_meanwhile_does_not_wait(db: Database) -> None:
    """The locks are per block: a create of an unrelated person goes on while another
    transaction holds its own person's blocks."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: its write lock already orders the checks")
    asha = PatientIn.model_validate({"name": "Asha Verma", "date_of_birth": "1990-03-04"})
    ravi = PatientIn.model_validate({"name": "Ravi Okafor", "date_of_birth": "1971-11-20"})
    with db.engine.begin() as first, _creating(db, first, asha), db.engine.begin() as second:
        second.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
        with _creating(db, second, ravi) as created:
            assert created["name"] == "Ravi Okafor"


def _created_together(
    db: Database, bodies: list[dict[str, Any]], confirmed: tuple[bool, ...] = ()
) -> list[dict[str, Any] | Exception]:
    """Creates that arrived together, run as the group commit runs them: one call, one
    transaction."""
    requests = [
        service.NewRequest(
            PatientIn.model_validate(body),
            service.stored_values(PatientIn.model_validate(body)),
            Actor.operator().event("patient.create"),
            bool(confirmed and confirmed[i]),
            "MRN",
            db.pending_audit,
        )
        for i, body in enumerate(bodies)
    ]
    with write_transaction(db.engine) as conn, trail.batched(conn), _outcome_hooks(conn):
        return service.create_each(conn, requests)


ASHA_BODY = {"name": "Asha Verma", "date_of_birth": "1990-03-04", "phone": "079460958"}
NHS_NUMBER = [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}]


def test_the_same_person_twice_in_one_batch_is_refused_the_second_time(db: Database) -> None:
    """Two creates of one person that share a transaction: the second is checked against
    the first once it is stored, and refused naming it, as if it had come later."""
    first, second = _created_together(db, [ASHA_BODY, {**ASHA_BODY, "name": "Asha Varma"}])
    assert isinstance(first, dict)
    assert isinstance(second, PossibleDuplicates)
    assert [c["id"] for c in second.candidates] == [first["id"]]
    created = audit_rows(db, action="patient.create")
    assert [(row["patient_id"], row["outcome"]) for row in created] == [(first["id"], "success")]


def test_a_batch_stores_what_it_can_and_refuses_the_rest(db: Database) -> None:
    """Unrelated people are all stored, with one audit event each; an identifier another
    create of the batch takes is refused (409), even to a create confirmed as somebody else;
    a likely duplicate confirmed as somebody else is stored."""
    answers = _created_together(
        db,
        [
            {"name": "Ravi Okafor", "age": 40, "identifiers": NHS_NUMBER},
            {"name": "Mei Lin", "age": 33, "identifiers": NHS_NUMBER},
            ASHA_BODY,
            {**ASHA_BODY, "email": "asha@example.org"},
            {"name": "Tomas Berg", "age": 71},
        ],
        confirmed=(False, True, False, True, False),
    )
    assert isinstance(answers[1], Conflict)
    assert "already has the identifier" in str(answers[1])
    stored = [a for a in answers if isinstance(a, dict)]
    assert [a["name"] for a in stored] == ["Ravi Okafor", "Asha Verma", "Asha Verma", "Tomas Berg"]
    created = audit_rows(db, action="patient.create")
    assert sorted(row["patient_id"] for row in created) == sorted(a["id"] for a in stored)
    assert [row["detail"] for row in created if row["patient_id"] == stored[2]["id"]] == [
        "confirmed not a duplicate"
    ]


def test_creates_of_one_batch_keep_their_order_when_one_waits_a_round(db: Database) -> None:
    """A create that may be the person of an earlier one (a nickname, day and month swapped:
    no block in common, so the database finds no candidate) waits for the second round, and
    so does every create after it: ids and the chain keep the order of arrival, as one by one."""
    answers = _created_together(
        db,
        [
            {"family_name": "Smith", "given_names": "Elizabeth", "date_of_birth": "1990-03-04"},
            {"family_name": "Smith", "given_names": "Liz", "date_of_birth": "1990-04-03"},
            {"name": "Tomas Berg", "age": 71},
        ],
    )
    ids = [answer["id"] for answer in answers if isinstance(answer, dict)]
    assert len(ids) == 3
    assert ids == sorted(ids)
    assert [row["patient_id"] for row in audit_rows(db, action="patient.create")] == ids


def test_a_create_refused_when_run_again_names_no_patient(
    db: Database, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create stored in an attempt that failed (another unit of its batch failed) and
    refused when its unit runs again alone: its refusal names no patient, not the id of the
    attempt that was rolled back."""
    original = GroupCommit._run_again

    def another_server_stores_asha_meanwhile(self: GroupCommit, batch: list, *a: Any, **k: Any):
        if len(batch) > 1:
            _created_together(db, [ASHA_BODY], confirmed=(True,))
        return original(self, batch, *a, **k)

    monkeypatch.setattr(GroupCommit, "_run_again", another_server_stores_asha_meanwhile)

    def failing(conn: Connection) -> None:
        raise RuntimeError("a unit of the batch failed")

    asha = PatientIn.model_validate(ASHA_BODY)
    with ThreadPoolExecutor(3) as pool:
        created, other = queued_behind_a_held_writer(
            db._writer,
            pool,
            [lambda: service.create_patient(db, admin, asha), lambda: db.write(failing)],
        )
        with pytest.raises(PossibleDuplicates):
            created.result(10)
        with pytest.raises(RuntimeError):
            other.result(10)
    [refused] = audit_rows(db, action="patient.create", outcome="possible_duplicate")
    assert refused["patient_id"] is None
