"""Cached pages are served only while no patient has changed, whoever changed it."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

from healthcare.db.revision_cache import MISSING, RevisionCache
from tests.conftest import new_patient


def test_entry_is_served_only_at_its_revision() -> None:
    cache = RevisionCache()
    cache.put("page", 7, "value")
    assert cache.get("page", 7) == "value"
    assert cache.get("page", 8) is MISSING
    assert cache.get("other", 7) is MISSING


def test_least_recently_used_entries_are_dropped() -> None:
    cache = RevisionCache(capacity=2)
    cache.put("a", 1, "A")
    cache.put("b", 1, "B")
    cache.get("a", 1)
    cache.put("c", 1, "C")
    assert cache.get("b", 1) is MISSING
    assert (cache.get("a", 1), cache.get("c", 1)) == ("A", "C")


def test_a_change_made_by_another_process_is_seen_at_once(
    client: FlaskClient, make_app: Callable[..., OpenAPI]
) -> None:
    reader, writer = client, make_app().test_client()
    writer.environ_base.update(client.environ_base)
    assert reader.get("/patients").json["total"] == 0
    patient = new_patient(writer, name="Written Elsewhere")
    assert [p["name"] for p in reader.get("/patients").json["items"]] == ["Written Elsewhere"]
    writer.patch(f"/patients/{patient['id']}", json={"name": "Renamed Elsewhere"})
    assert reader.get("/patients").json["items"][0]["name"] == "Renamed Elsewhere"
    assert reader.get("/patients?q=renamed").json["total"] == 1
    writer.delete(f"/patients/{patient['id']}")
    assert reader.get("/patients").json["total"] == 0
    assert reader.get("/patients/deleted").json["total"] == 1
