"""/metrics: Prometheus figures by route template and status, for admins only."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.auth.test_sessions import sign_in
from tests.conftest import new_patient


def samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and sorted labels."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.json
    assert response.content_type.startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }


def requests_of(found: dict, method: str, route: str, status: str) -> float:
    labels = (("method", method), ("route", route), ("status", status))
    return found.get(("healthcare_requests_total", labels), 0.0)


def test_metrics_are_for_admins_only(
    client_as: Callable[[str], FlaskClient], anonymous: FlaskClient
) -> None:
    assert anonymous.get("/metrics").status_code == 401
    assert client_as("clinician").get("/metrics").status_code == 403
    assert client_as("admin").get("/metrics").status_code == 200


def test_requests_are_counted_by_route_template_and_status(client: FlaskClient) -> None:
    before = samples(client)
    patient = new_patient(client)
    for _ in range(3):
        assert client.get(f"/patients/{patient['id']}").status_code == 200  # the fast lane
    assert client.get("/patients/999999").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    after = samples(client)

    def added(*labels: str) -> float:
        return requests_of(after, *labels) - requests_of(before, *labels)

    assert added("POST", "/patients", "201") == 1
    assert added("GET", "/patients/<int:patient_id>", "200") == 3
    assert added("GET", "/patients/<int:patient_id>", "404") == 1
    assert added("GET", "unmatched", "404") == 1
    assert not [key for key in after if "999999" in str(key) or "/no/such" in str(key)]
    batches = ("healthcare_group_commit_batch_size_count", ())
    assert after[batches] > before.get(batches, 0)
    assert ("healthcare_request_duration_seconds_bucket",
            (("le", "0.001"), ("route", "/patients"))) in after  # fmt: skip


def test_sign_in_failures_are_counted(client: FlaskClient, anonymous: FlaskClient) -> None:
    key = ("healthcare_sign_in_failures_total", ())
    before = samples(client).get(key, 0.0)
    assert sign_in(anonymous, "clinician", "not the password").status_code == 401
    assert samples(client)[key] == before + 1


def test_queued_audit_events_are_shown(client: FlaskClient) -> None:
    patient = new_patient(client)
    db = client.application.extensions["healthcare.db"]
    db.pending_audit.flush()
    client.get(f"/patients/{patient['id']}")  # a read: its audit row waits for the flush
    key = ("healthcare_audit_events_queued", ())
    assert samples(client)[key] >= 1
    db.pending_audit.flush()
    assert samples(client)[key] == 0
