"""One JSON line per request, request ids, and no patient data in any log line."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from healthcare.observability import BufferedStreamHandler
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


def test_buffered_log_lines_reach_the_stream_on_flush_and_errors_at_once() -> None:
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, interval=60)
    logger = logging.getLogger("healthcare.test-buffer")
    logger.addHandler(handler)
    try:
        logger.warning("first")
        assert stream.getvalue() == "first\n"
        logger.error("second")
        assert stream.getvalue().splitlines() == ["first", "second"]
        logger.setLevel(logging.INFO)
        logger.info("third")
        assert "third" not in stream.getvalue()
        handler.flush()
        assert stream.getvalue().splitlines()[-1] == "third"
    finally:
        logger.removeHandler(handler)
