"""Name search: start of any word, case- and accent-blind, every script, on both databases."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from healthcare.auth.access import Actor
from healthcare.db.database import Database
from healthcare.patients import queries, service
from healthcare.patients.schemas import PatientQuery
from healthcare.patients.search import fold, search_words
from tests.conftest import new_patient

NAMES = [
    "Asha Verma", "Zoë Ångström", "José Núñez", "Анна Смирнова", "王小明", "Siobhán O'Brien",
    "Jean-Luc Picard", "ZOE BARNES", "Severin Müller",
]  # fmt: skip


@pytest.fixture
def names(client: FlaskClient) -> None:
    for name in NAMES:
        new_patient(client, name=name)


@pytest.mark.usefixtures("names")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ver", ["Asha Verma"]),
        ("zoe", ["Zoë Ångström", "ZOE BARNES"]),
        ("ZOË", ["Zoë Ångström", "ZOE BARNES"]),
        ("angs", ["Zoë Ångström"]),
        ("nunez", ["José Núñez"]),
        ("анна", ["Анна Смирнова"]),
        ("смир", ["Анна Смирнова"]),
        ("王", ["王小明"]),
        ("brien", ["Siobhán O'Brien"]),
        ("luc", ["Jean-Luc Picard"]),
        ("asha ver", ["Asha Verma"]),
        ("verma asha", ["Asha Verma"]),
        ("erma", []),
        ("asha smirnova", []),
        ("mül", ["Severin Müller"]),
    ],
)
def test_search_matches_start_of_any_word(
    client: FlaskClient, query: str, expected: list[str]
) -> None:
    page = client.get("/patients", query_string={"q": query}).json
    assert sorted(p["name"] for p in page["items"]) == sorted(expected)
    assert page["total"] == len(expected)


@pytest.mark.usefixtures("names")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"', NAMES),  # no words: no name filter
        ("*", NAMES),
        (":*&|!", NAMES),
        ("", NAMES),
        ("a OR b", []),  # three words, and no name has a word starting "or" or "b"
        ("NEAR(", []),
        ("' OR 1=1 --", []),
        ("zoe*", ["Zoë Ångström", "ZOE BARNES"]),
        ("o'brien", ["Siobhán O'Brien"]),
        ('"jean-luc"', ["Jean-Luc Picard"]),
    ],
)
def test_search_syntax_characters_are_just_text(
    client: FlaskClient, query: str, expected: list[str]
) -> None:
    page = client.get("/patients", query_string={"q": query, "limit": 100}).json
    assert sorted(p["name"] for p in page["items"]) == sorted(expected)
    assert page["total"] == len(expected)


@pytest.mark.usefixtures("names")
def test_search_combines_with_filters_and_skips_deleted(client: FlaskClient) -> None:
    target = new_patient(client, name="Zoe Deleted", disease="Flu")
    client.delete(f"/patients/{target['id']}")
    assert client.get("/patients?q=deleted").json["total"] == 0
    new_patient(client, name="Zoe Flu", disease="Flu")
    page = client.get("/patients?q=zoe&disease=flu").json
    assert [p["name"] for p in page["items"]] == ["Zoe Flu"]
    assert page["total"] == 1
    client.post(f"/patients/{target['id']}/restore")
    assert client.get("/patients?q=deleted").json["total"] == 1


@pytest.mark.usefixtures("names")
def test_renamed_patient_is_found_by_new_name_only(client: FlaskClient) -> None:
    patient = new_patient(client, name="Old Name")
    client.patch(f"/patients/{patient['id']}", json={"name": "Fresh Name"})
    assert client.get("/patients?q=old").json["total"] == 0
    assert client.get("/patients?q=fresh").json["total"] == 1


def test_search_sorted_by_name_and_paged(client: FlaskClient) -> None:
    for name in ["Zoe C", "Zoe A", "Zoe B"]:
        new_patient(client, name=name)
    page = client.get("/patients?q=zoe&sort=-name&limit=2").json
    assert [p["name"] for p in page["items"]] == ["Zoe C", "Zoe B"]
    assert page["total"] == 3


def test_fold_strips_case_and_accents() -> None:
    assert fold("Zoë ÅNGSTRÖM") == "zoe angstrom"
    assert search_words("  O'Brien-Smith ") == ["o", "brien", "smith"]


@given(st.text())
def test_search_words_are_always_plain_word_characters(text: str) -> None:
    for word in search_words(text):
        assert word
        assert all(ch.isalnum() or ch == "_" for ch in word)


def test_a_listing_page_skips_rows_in_the_active_ids_index(
    db: Database, client: FlaskClient
) -> None:
    """The page's ids come from the narrow index of active patients' ids; only the page's own
    rows are read. (On an empty table every partial index costs the same to a planner, so
    there are patients, and PostgreSQL has statistics, as autovacuum would give it.)"""
    for n in range(30):
        new_patient(client, name=f"Listed {n}")
    listing, params = queries.patient_listing(PatientQuery(offset=10), db.dialect)
    sql, arguments = listing.page.arguments(db.engine, params)
    with db.reading() as conn:
        if db.dialect == "sqlite":
            plan = " ".join(
                str(row) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", arguments)
            )
        else:
            conn.exec_driver_sql("ANALYZE patients")
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(str(row) for row in conn.exec_driver_sql(f"EXPLAIN {sql}", arguments))
    assert "ix_patients_active_id" in plan, plan


def test_a_postgresql_search_page_finds_its_matches_through_the_name_index(
    db: Database, client: FlaskClient
) -> None:
    """The page of a name search takes its matches from the full-text index, then sorts them.
    The planner, expecting thousands of matches for any prefix, walked the id index instead and
    tested every row's name until a page was full: the whole table for a rare prefix (360 ms
    at 245,000 patients). Also: the index is used by a generic plan too (the configuration is
    a literal, not a parameter)."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite's search orders by its full-text index's own rowid (one page read)")
    for n in range(30):
        new_patient(client, name=f"Listed {n}")
    listing, params = queries.patient_listing(PatientQuery(q="zyx"), db.dialect)
    sql, arguments = listing.page.arguments(db.engine, params)
    with db.reading() as conn:
        conn.exec_driver_sql("ANALYZE patients")
        conn.exec_driver_sql("SET enable_seqscan = off")
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        numbered, values = _numbered(sql, arguments)
        conn.exec_driver_sql(f"PREPARE page AS {numbered}".replace("%", "%%"))
        literals = ", ".join(_literal(value) for value in values)
        plan = " ".join(conn.exec_driver_sql(f"EXPLAIN EXECUTE page({literals})").scalars())
    assert "ix_patients_name_search" in plan, plan
    assert "ix_patients_active_id" not in plan, plan


def _numbered(sql: str, arguments: dict[str, Any]) -> tuple[str, list[Any]]:
    """A psycopg statement's named placeholders as PREPARE's $1, $2... and their values."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return re.sub(r"%\((\w+)\)s", number, sql), [arguments[name] for name in names]


def _literal(value: Any) -> str:
    return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"


@pytest.mark.usefixtures("names")
def test_a_search_counts_every_match_whatever_the_page(client: FlaskClient, db: Database) -> None:
    """The total of a search is every match: on a page past the end, and on a keyset page
    (FHIR's links), which starts after a patient."""
    past_the_end = client.get("/patients?q=zoe&offset=10").json
    assert (past_the_end["items"], past_the_end["total"]) == ([], 2)
    first, second = client.get("/patients?q=zoe").json["items"]
    after = service.list_patients(db, Actor.operator(), PatientQuery(q="zoe", after=first["id"]))
    assert ([p["id"] for p in after["items"]], after["total"]) == ([second["id"]], 2)
