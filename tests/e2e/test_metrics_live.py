"""/metrics of a real `healthcare serve` with two worker processes: the figures of both."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Server

pytestmark = pytest.mark.slow


def _samples(server: Server, http: requests.Session, name: str) -> list:
    text = http.get(f"{server.url}/metrics", timeout=10).text
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def test_counters_add_up_across_worker_processes(
    live_server: Server, http: requests.Session
) -> None:
    def healthz_count() -> float:
        found = _samples(live_server, http, "healthcare_requests_total")
        return sum(s.value for s in found if s.labels["route"] == "/healthz")

    before = healthz_count()
    for _ in range(60):  # a connection each, so that both workers take some
        assert requests.get(f"{live_server.url}/healthz", timeout=10).status_code == 200
    assert healthz_count() == before + 60
    workers = {s.labels["pid"] for s in _samples(live_server, http, "healthcare_worker_up")}
    assert len(workers) >= 2, "every worker process reports into the same figures"
