"""The /patients contract, on both databases."""

from __future__ import annotations

from datetime import date

import pytest
from flask.testing import FlaskClient

from healthcare.patients.schemas import age_on, today_utc
from tests.conftest import new_patient


def test_create_returns_201_location_etag_and_server_fields(client: FlaskClient) -> None:
    response = client.post(
        "/patients", json={"name": "  Asha Verma ", "age": 34, "disease": "Asthma"}
    )
    assert response.status_code == 201
    patient = response.json
    assert response.headers["Location"] == f"/patients/{patient['id']}"
    assert response.headers["ETag"] == '"1"'
    assert patient["name"] == "Asha Verma"
    assert patient["version"] == 1
    assert patient["created_at"] == patient["updated_at"]
    assert patient["created_at"].endswith("Z")
    assert client.get(response.headers["Location"]).json == patient


def test_all_optional_fields_round_trip(client: FlaskClient) -> None:
    fields = {
        "name": "Zoë Ångström",
        "gender": "female",
        "date_of_birth": "1990-02-28",
        "phone": "+44 (20) 7946-0958",
        "email": "zoe@example.org",
        "notes": "Allergic to penicillin.\nPrefers mornings.",
        "disease": None,
    }
    patient = new_patient(client, **fields, age=None)
    stored = client.get(f"/patients/{patient['id']}").json
    assert {k: stored[k] for k in fields} == fields
    assert stored["age"] == age_on(date(1990, 2, 28), today_utc())


def test_read_unknown_patient_is_404_problem(client: FlaskClient) -> None:
    response = client.get("/patients/999999")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 404


def test_put_replaces_all_writable_fields_and_bumps_version(client: FlaskClient) -> None:
    patient = new_patient(client, disease="Flu", phone="555 0101")
    response = client.put(
        f"/patients/{patient['id']}",
        json={"name": "Asha V. Verma", "age": 35},
        headers={"If-Match": '"1"'},
    )
    assert response.status_code == 200
    updated = response.json
    assert (updated["name"], updated["age"], updated["disease"], updated["phone"]) == (
        "Asha V. Verma", 35, None, None,
    )  # fmt: skip
    assert updated["version"] == 2
    assert response.headers["ETag"] == '"2"'
    assert updated["updated_at"] > patient["updated_at"]
    assert updated["created_at"] == patient["created_at"]


def test_put_with_stale_if_match_is_412_and_changes_nothing(client: FlaskClient) -> None:
    patient = new_patient(client)
    client.put(f"/patients/{patient['id']}", json={"name": "First clerk", "age": 34})
    response = client.put(
        f"/patients/{patient['id']}",
        json={"name": "Second clerk", "age": 34},
        headers={"If-Match": '"1"'},
    )
    assert response.status_code == 412
    assert response.headers["ETag"] == '"2"'
    assert client.get(f"/patients/{patient['id']}").json["name"] == "First clerk"


@pytest.mark.parametrize("header", ['W/"1"', "garbage", '"0"'])
def test_unusable_if_match_never_matches(client: FlaskClient, header: str) -> None:
    patient = new_patient(client)
    response = client.patch(
        f"/patients/{patient['id']}", json={"age": 40}, headers={"If-Match": header}
    )
    assert response.status_code == 412


def test_if_match_star_matches_any_version(client: FlaskClient) -> None:
    patient = new_patient(client)
    response = client.patch(
        f"/patients/{patient['id']}", json={"age": 40}, headers={"If-Match": "*"}
    )
    assert response.status_code == 200


def test_put_identical_data_is_not_a_new_version(client: FlaskClient) -> None:
    patient = new_patient(client, disease="Flu")
    response = client.put(
        f"/patients/{patient['id']}", json={"name": "Asha Verma", "age": 34, "disease": "Flu"}
    )
    assert response.json["version"] == 1


def test_merge_patch_replaces_given_fields_and_null_removes(client: FlaskClient) -> None:
    patient = new_patient(client, disease="Flu", phone="555 0101")
    response = client.patch(
        f"/patients/{patient['id']}",
        data='{"disease": null, "gender": "other"}',
        content_type="application/merge-patch+json",
        headers={"If-Match": '"1"'},
    )
    assert response.status_code == 200
    updated = response.json
    assert (updated["disease"], updated["gender"], updated["phone"]) == (None, "other", "555 0101")
    assert updated["version"] == 2


def test_merge_patch_cannot_remove_the_name(client: FlaskClient) -> None:
    patient = new_patient(client)
    response = client.patch(f"/patients/{patient['id']}", json={"name": None})
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "name"


def test_merge_patch_of_birth_date_derives_new_age(client: FlaskClient) -> None:
    patient = new_patient(client, age=None, date_of_birth="2000-01-01")
    response = client.patch(f"/patients/{patient['id']}", json={"date_of_birth": "2010-06-15"})
    assert response.status_code == 200
    assert response.json["age"] == age_on(date(2010, 6, 15), today_utc())


def test_removing_birth_date_requires_an_age(client: FlaskClient) -> None:
    patient = new_patient(client, age=None, date_of_birth="2000-01-01")
    response = client.patch(f"/patients/{patient['id']}", json={"date_of_birth": None})
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "age"


def test_delete_is_soft_and_restore_brings_it_back(client: FlaskClient) -> None:
    patient = new_patient(client)
    assert client.delete(f"/patients/{patient['id']}").status_code == 204
    assert client.get(f"/patients/{patient['id']}").status_code == 404
    assert client.get("/patients").json["total"] == 0
    assert client.delete(f"/patients/{patient['id']}").status_code == 404
    deleted = client.get("/patients/deleted").json
    assert deleted["total"] == 1
    assert deleted["items"][0]["id"] == patient["id"]
    assert deleted["items"][0]["deleted_at"].endswith("Z")
    restored = client.post(f"/patients/{patient['id']}/restore")
    assert restored.status_code == 200
    assert restored.json["version"] == 3
    assert client.get(f"/patients/{patient['id']}").status_code == 200
    assert client.get("/patients/deleted").json["total"] == 0
    assert client.get("/patients").json["total"] == 1


def test_delete_with_stale_if_match_is_412(client: FlaskClient) -> None:
    patient = new_patient(client)
    client.patch(f"/patients/{patient['id']}", json={"age": 50})
    response = client.delete(f"/patients/{patient['id']}", headers={"If-Match": '"1"'})
    assert response.status_code == 412
    assert client.get(f"/patients/{patient['id']}").status_code == 200


def test_restore_of_a_live_patient_is_409(client: FlaskClient) -> None:
    patient = new_patient(client)
    response = client.post(f"/patients/{patient['id']}/restore")
    assert response.status_code == 409
    assert client.post("/patients/424242/restore").status_code == 404


def test_deleted_patients_cannot_be_changed(client: FlaskClient) -> None:
    patient = new_patient(client)
    client.delete(f"/patients/{patient['id']}")
    assert client.patch(f"/patients/{patient['id']}", json={"age": 1}).status_code == 404
    body = {"name": "X", "age": 1}
    assert client.put(f"/patients/{patient['id']}", json=body).status_code == 404


def test_list_pages_with_total(client: FlaskClient) -> None:
    ids = [new_patient(client, name=f"Patient {i}")["id"] for i in range(7)]
    page = client.get("/patients?limit=3&offset=2").json
    assert (page["total"], page["limit"], page["offset"]) == (7, 3, 2)
    assert [p["id"] for p in page["items"]] == ids[2:5]
    assert client.get("/patients?limit=3&offset=6").json["items"][0]["id"] == ids[6]
    assert client.get("/patients?offset=100").json["items"] == []


@pytest.mark.parametrize(
    ("sort", "key", "reverse"),
    [
        ("name", "name", False), ("-name", "name", True), ("age", "age", False),
        ("-age", "age", True), ("-id", "id", True), ("created_at", "created_at", False),
        ("-updated_at", "updated_at", True),
    ],
)  # fmt: skip
def test_list_sorts(client: FlaskClient, sort: str, key: str, reverse: bool) -> None:
    for name, age in [("Carol", 50), ("alice", 20), ("Bob", 70), ("Dave", 20)]:
        new_patient(client, name=name, age=age)
    items = client.get(f"/patients?sort={sort}").json["items"]
    values = [(p[key], p["id"]) for p in items]
    assert values == sorted(values, reverse=reverse)


def test_list_filters_by_disease_any_case_and_gender(client: FlaskClient) -> None:
    new_patient(client, name="A", disease="Asthma", gender="female")
    new_patient(client, name="B", disease="asthma", gender="male")
    new_patient(client, name="C", disease="Flu", gender="female")
    by_disease = client.get("/patients?disease=ASTHMA").json
    assert sorted(p["name"] for p in by_disease["items"]) == ["A", "B"]
    assert by_disease["total"] == 2
    both = client.get("/patients?disease=asthma&gender=female").json
    assert [p["name"] for p in both["items"]] == ["A"]
    assert both["total"] == 1


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "offset=-1", "sort=bogus", "gender=x", "limit=abc", "colour=red"],
)
def test_bad_list_queries_are_422(client: FlaskClient, query: str) -> None:
    response = client.get(f"/patients?{query}")
    assert response.status_code == 422
    assert response.json["errors"]


def test_patient_data_is_never_cached(client: FlaskClient) -> None:
    patient = new_patient(client)
    assert client.get(f"/patients/{patient['id']}").headers["Cache-Control"] == "no-store"
    assert client.get("/patients").headers["Cache-Control"] == "no-store"


def test_restore_honours_if_match(client: FlaskClient) -> None:
    patient = new_patient(client)
    deleted_version = patient["version"] + 1
    assert client.delete(f"/patients/{patient['id']}").status_code == 204
    stale = client.post(f"/patients/{patient['id']}/restore", headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.mimetype == "application/problem+json"
    assert client.get(f"/patients/{patient['id']}").status_code == 404
    current = client.post(
        f"/patients/{patient['id']}/restore", headers={"If-Match": f'"{deleted_version}"'}
    )
    assert current.status_code == 200
    assert current.headers["ETag"] == f'"{deleted_version + 1}"'
    assert client.get(f"/patients/{patient['id']}").status_code == 200


def test_restore_with_if_match_star_or_none_needs_no_version(client: FlaskClient) -> None:
    for headers in ({"If-Match": "*"}, {}):
        patient = new_patient(client)
        client.delete(f"/patients/{patient['id']}")
        restored = client.post(f"/patients/{patient['id']}/restore", headers=headers)
        assert restored.status_code == 200, headers


def test_a_204_answer_has_no_content_type(client: FlaskClient) -> None:
    patient = new_patient(client)
    response = client.delete(f"/patients/{patient['id']}")
    assert response.status_code == 204
    assert "Content-Type" not in response.headers


def test_a_query_parameter_given_twice_is_refused_as_a_problem(client: FlaskClient) -> None:
    response = client.get("/patients?q=an&limit=2&q=bo")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert [e["field"] for e in response.json["errors"]] == ["q"]
