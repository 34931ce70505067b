"""The production server, started the way an operator starts it."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import Server, start_server, write_burst_then

pytestmark = pytest.mark.slow


def test_crud_over_http(live_server: Server, http: requests.Session) -> None:
    base = f"{live_server.url}/patients"
    created = http.post(base, json={"name": "Live Patient", "age": 41}, timeout=5)
    assert created.status_code == 201
    location = live_server.url + created.headers["Location"]
    assert http.get(location, timeout=5).json()["name"] == "Live Patient"
    patched = http.patch(location, json={"disease": "Flu"}, headers={"If-Match": '"1"'}, timeout=5)
    assert patched.json()["version"] == 2
    stale = http.put(location, json={"name": "X", "age": 1}, headers={"If-Match": '"1"'}, timeout=5)
    assert stale.status_code == 412
    assert http.delete(location, timeout=5).status_code == 204
    assert http.get(location, timeout=5).status_code == 404
    assert http.post(f"{location}/restore", timeout=5).status_code == 200


def test_nothing_without_credentials(live_server: Server) -> None:
    closed = [("GET", "/patients"), ("GET", "/patients/1"), ("POST", "/patients"),
              ("GET", "/audit"), ("GET", "/openapi.json"), ("DELETE", "/patients/1")]  # fmt: skip
    for method, path in closed:
        response = requests.request(method, live_server.url + path, timeout=5)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"{live_server.url}/healthz", timeout=5).status_code == 200


def test_server_speaks_problem_json_and_hides_its_banner(
    live_server: Server, http: requests.Session
) -> None:
    response = http.post(
        f"{live_server.url}/patients", data="{", headers={"Content-Type": "application/json"},
        timeout=5,
    )  # fmt: skip
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["X-Request-ID"]
    assert response.headers["Server"] == "healthcare"  # not the server software or its version
    assert "Content-Security-Policy" in response.headers


def test_sigterm_finishes_in_flight_writes_and_keeps_every_acknowledged_one(
    database_url: str, tmp_path: Path, http: requests.Session
) -> None:
    server = start_server(database_url, tmp_path)
    stopped: list[int] = []
    acknowledged = [
        patient["id"]
        for patient in write_burst_then(
            server.url, lambda: stopped.append(server.stop(signal.SIGTERM)), http, threads=16
        )
    ]
    assert stopped == [0]
    assert acknowledged
    restarted = start_server(database_url, tmp_path)
    try:
        missing = [
            pid for pid in acknowledged
            if http.get(f"{restarted.url}/patients/{pid}", timeout=5).status_code != 200
        ]  # fmt: skip
    finally:
        restarted.stop()
    assert missing == []


def test_serve_refuses_to_start_without_a_secret_key(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="HEALTHCARE_SECRET_KEY"):
        start_server(database_url, tmp_path, HEALTHCARE_SECRET_KEY="")


def test_mixed_requests_at_once_are_all_answered_and_audited(
    live_server: Server, http: requests.Session
) -> None:
    """Creates, reads, listings and audit pages (which flush the worker's pending read events
    from the request thread) from 16 clients at once: each worker runs one request at a time
    and lets the next in while a request waits for its commit, so nothing may wait forever
    for anything else."""
    base = live_server.url
    created: list[int] = []

    def client(n: int) -> list[int]:
        statuses = []
        for i in range(12):
            if n % 4 == 0:
                response = http.post(f"{base}/patients", json={"name": f"Mix {n} {i}", "age": 30},
                                     timeout=30)  # fmt: skip
                if response.status_code == 201:
                    created.append(response.json()["id"])
            elif n % 4 == 1 and created:
                response = http.get(f"{base}/patients/{created[-1]}", timeout=30)
            elif n % 4 == 2:
                response = http.get(f"{base}/patients", params={"q": "mix", "limit": 5}, timeout=30)
            else:
                response = http.get(f"{base}/audit", params={"limit": 5}, timeout=30)
            statuses.append(response.status_code)
        return statuses

    with ThreadPoolExecutor(16) as pool:
        answered = [status for statuses in pool.map(client, range(16)) for status in statuses]
    assert len(answered) == 16 * 12
    assert set(answered) <= {200, 201}, answered
    assert len(created) == 4 * 12
    audited = http.get(f"{base}/audit", params={"action": "patient.create", "limit": 100},
                       timeout=30).json()["items"]  # fmt: skip
    assert set(created) <= {row["patient_id"] for row in audited}


def test_the_server_starts_without_a_warning(live_server: Server) -> None:
    """granian warned about its thread count at every start of the WSGI server."""
    assert "[WARNING]" not in live_server.log()
