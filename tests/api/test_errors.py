"""Every error on an API path is problem+json; bad input is refused and nothing is lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

from tests.conftest import Account, bearer, new_patient

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert set(response.json) >= PROBLEM_KEYS
    assert response.json["status"] == status
    assert b"Traceback" not in response.data
    return response.json


def test_malformed_json_is_400(client: FlaskClient) -> None:
    response = client.post("/patients", data='{"name": "A", ', content_type="application/json")
    assert_problem(response, 400)


@pytest.mark.parametrize(
    ("method", "content_type"),
    [("post", "text/plain"), ("post", "application/x-www-form-urlencoded"), ("put", None),
     ("patch", "application/xml")],
)  # fmt: skip
def test_non_json_body_is_415(client: FlaskClient, method: str, content_type: str | None) -> None:
    patient = new_patient(client)
    path = "/patients" if method == "post" else f"/patients/{patient['id']}"
    response = getattr(client, method)(path, data="name=x", content_type=content_type)
    assert_problem(response, 415)


def test_body_over_one_mebibyte_is_413_and_nothing_is_stored(client: FlaskClient) -> None:
    body = '{"name": "A", "age": 1, "notes": "' + "x" * (1024 * 1024) + '"}'
    response = client.post("/patients", data=body, content_type="application/json")
    assert_problem(response, 413)
    assert client.get("/patients").json["total"] == 0


def test_wrong_method_is_405_with_allow(client: FlaskClient) -> None:
    response = client.delete("/patients")
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_unknown_path_is_404_problem(client: FlaskClient) -> None:
    assert_problem(client.get("/nothing-here"), 404)
    assert_problem(client.get("/patients/not-a-number"), 404)


BAD_BODIES = [
    ({"age": 30}, "name"),
    ({"name": "", "age": 30}, "name"),
    ({"name": "   ", "age": 30}, "name"),
    ({"name": "x" * 201, "age": 30}, "name"),
    ({"name": 42, "age": 30}, "name"),
    ({"name": "Bell\x07", "age": 30}, "name"),
    ({"name": "A"}, "age"),
    ({"name": "A", "age": -1}, "age"),
    ({"name": "A", "age": 151}, "age"),
    ({"name": "A", "age": 10**30}, "age"),
    ({"name": "A", "age": "30"}, "age"),
    ({"name": "A", "age": 30.0}, "age"),
    ({"name": "A", "age": True}, "age"),
    ({"name": "A", "age": None}, "age"),
    ({"name": "A", "age": 30, "disease": "d" * 201}, "disease"),
    ({"name": "A", "age": 30, "disease": ["flu"]}, "disease"),
    ({"name": "A", "age": 30, "gender": "M"}, "gender"),
    ({"name": "A", "age": 30, "email": "not-an-email"}, "email"),
    ({"name": "A", "age": 30, "phone": "call me"}, "phone"),
    ({"name": "A", "age": 30, "notes": "n" * 2001}, "notes"),
    ({"name": "A", "date_of_birth": "2999-01-01"}, "date_of_birth"),
    ({"name": "A", "date_of_birth": "01/02/2000"}, "date_of_birth"),
    ({"name": "A", "date_of_birth": "2000-02-30"}, "date_of_birth"),
    ({"name": "A", "date_of_birth": 946684800}, "date_of_birth"),
    ({"name": "A", "date_of_birth": "1800-01-01"}, "date_of_birth"),
    ({"name": "A", "date_of_birth": "2000-01-01", "age": 3}, "age"),
    ({"name": "A", "age": 30, "id": 5}, "id"),
    ({"name": "A", "age": 30, "version": 2}, "version"),
    ({"name": "A", "age": 30, "diagnosis": "flu"}, "diagnosis"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_invalid_create_is_422_naming_the_field(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.post("/patients", json=body), 422)
    assert field in {error["field"] for error in problem["errors"]}
    assert all(error["message"] for error in problem["errors"])
    assert client.get("/patients").json["total"] == 0


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_invalid_update_is_422_and_keeps_the_record(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    patient = new_patient(client)
    problem = assert_problem(client.put(f"/patients/{patient['id']}", json=body), 422)
    assert field in {error["field"] for error in problem["errors"]}
    assert client.get(f"/patients/{patient['id']}").json == patient


@pytest.mark.parametrize("body", ["[]", '"a string"', "42", "null", '[{"name": "A", "age": 1}]'])
def test_json_that_is_not_an_object_is_422_and_stores_nothing(
    client: FlaskClient, body: str
) -> None:
    patient = new_patient(client)
    for method, path in (("POST", "/patients"), ("PUT", f"/patients/{patient['id']}")):
        response = client.open(path, method=method, data=body, content_type="application/json")
        assert_problem(response, 422)
    assert client.get("/patients").json["items"] == [patient]


@pytest.mark.parametrize(
    "name",
    [
        "Robert'); DROP TABLE patients;--",
        "' OR '1'='1",
        "Ωμέγα Αλφα",
        "Владимир Путинцев",
        "محمد بن سلمان",
        "佐藤 健",
        "김 민준",
        "नरेंद्र कुमार",
        "Nguyễn Thị Minh Khai",
        "O'Connor-Smith",
        "👩‍⚕️ Emoji Name",
        "<script>alert(1)</script>",
    ],
)
def test_any_script_and_hostile_strings_are_stored_literally(
    client: FlaskClient, name: str
) -> None:
    patient = new_patient(client, name=name)
    assert client.get(f"/patients/{patient['id']}").json["name"] == name
    assert client.get("/patients").json["total"] == 1


def test_unexpected_error_is_500_with_request_id_matching_the_log(
    make_app: Callable[..., OpenAPI],
    log_lines: Callable[[], list[dict[str, Any]]],
    accounts: dict[str, Account],
) -> None:
    app = make_app()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    headers = {"X-Request-ID": "req-123", **bearer(accounts["viewer"].token)}
    response = app.test_client().get("/boom", headers=headers)
    problem = assert_problem(response, 500)
    assert problem["request_id"] == response.headers["X-Request-ID"] != "req-123"
    assert "kaboom" not in response.text
    errors = [line for line in log_lines() if line["level"] == "error"]
    assert errors
    assert errors[0]["request_id"] == problem["request_id"]
    assert "kaboom" in errors[0]["exception"]


def test_a_query_parameter_given_twice_is_refused(client: FlaskClient) -> None:
    response = client.get("/patients?disease=flu&disease=cold&limit=5")
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == ["disease"]
