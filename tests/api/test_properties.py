"""Property-based: whatever a client sends, the answer is a stored patient or a clear 4xx."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False), st.text(max_size=300), st.lists(st.integers(), max_size=3),
)  # fmt: skip
VALID_PATIENTS = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=200).filter(lambda s: s.strip() and s.isprintable()),
        "age": st.integers(min_value=0, max_value=150),
    },
    optional={
        "disease": st.none() | st.text(max_size=200).filter(str.isprintable),
        "gender": st.sampled_from(["male", "female", "other", "unknown"]),
        "notes": st.text(max_size=2000).filter(str.isprintable),
    },
)
ANY_BODY = st.dictionaries(
    st.sampled_from(["name", "age", "disease", "gender", "date_of_birth", "email", "phone",
                     "notes", "id", "extra"]),
    FIELD_VALUES,
)  # fmt: skip
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(body=VALID_PATIENTS)
def test_every_valid_patient_round_trips(client: FlaskClient, body: dict[str, Any]) -> None:
    created = client.post("/patients", json=body)
    assert created.status_code == 201, created.json
    stored = client.get(created.headers["Location"]).json
    assert stored["name"] == body["name"].strip()
    assert stored["age"] == body["age"]
    for field in ("gender",):
        assert stored.get(field) == body.get(field)
    for field in ("disease", "notes"):
        assert stored[field] == ((body.get(field) or "").strip() or None)


@SETTINGS
@given(body=ANY_BODY)
def test_any_body_is_stored_or_refused_with_field_errors(
    client: FlaskClient, body: dict[str, Any]
) -> None:
    before = client.get("/patients?limit=1").json["total"]
    response = client.post("/patients", json=body)
    assert response.status_code in {201, 422}, response.json
    after = client.get("/patients?limit=1").json["total"]
    if response.status_code == 201:
        assert after == before + 1
    else:
        assert after == before
        assert response.json["errors"]
