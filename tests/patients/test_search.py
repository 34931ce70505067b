"""Name search: start of any word, case- and accent-blind, every script, on both databases."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from healthcare.db.database import Database
from healthcare.patients import queries
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
