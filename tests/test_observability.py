"""One JSON line per request, request ids, and no patient data in any log line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import new_patient

SECRET_NAME = "Philippa Quarrington"
SECRET_DISEASE = "Rare-Condition-XYZ"


def test_each_request_logs_one_json_line(
    client: FlaskClient, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    (line,) = [line for line in log_lines() if line["logger"] == "healthcare.access"]
    assert line["request_id"] == "abc-123"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    assert line["duration_ms"] >= 0


def test_unsafe_request_ids_are_replaced(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"})
    generated = response.headers["X-Request-ID"]
    assert generated != "bad id <script>"
    assert len(generated) == 32


def test_no_patient_data_in_any_log_line(
    client: FlaskClient, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    patient = new_patient(client, name=SECRET_NAME, disease=SECRET_DISEASE)
    client.get("/patients", query_string={"q": SECRET_NAME, "disease": SECRET_DISEASE})
    client.put(f"/patients/{patient['id']}", json={"name": SECRET_NAME, "age": -5})
    client.post("/patients", json={"name": SECRET_NAME, "disease": SECRET_DISEASE, "age": "x"})
    client.patch(f"/patients/{patient['id']}", json={"disease": SECRET_DISEASE.lower()})
    lines = log_lines()
    assert len(lines) >= 5
    text = repr(lines).lower()
    for secret in [SECRET_NAME, "philippa", SECRET_DISEASE]:
        assert secret.lower() not in text
