"""The lane for `GET /patients/{id}` and `GET /patients` answers as the Flask routes do, or
leaves the call to Flask."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from werkzeug.test import Client
from werkzeug.wrappers import Response

from healthcare import observability
from healthcare.api.fast_lane import FastLane
from healthcare.db.database import Database
from healthcare.observability import RequestMiddleware
from healthcare.patients import service
from tests.conftest import Account, add_token, add_user, audit_rows, new_patient

REQUEST_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _one_request_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Request ids are made by the server (random): the same one for both paths compared."""
    monkeypatch.setattr(observability, "new_request_id", lambda: REQUEST_ID)


AUDITED = ("action", "outcome", "patient_id", "username", "token_label", "client", "request_id")


def _lane(app: OpenAPI) -> FastLane:
    lane = app.wsgi_app.wsgi_app  # type: ignore[attr-defined]
    assert isinstance(lane, FastLane)
    return lane


def _both(app: OpenAPI, path: str, **request: Any) -> tuple[Any, Any]:
    """The same request through the whole stack (lane included) and through Flask alone."""
    with_lane = Client(app.wsgi_app, Response, use_cookies=False)
    flask_only = Client(RequestMiddleware(_lane(app).wsgi_app), Response, use_cookies=False)
    headers = {"X-Request-ID": REQUEST_ID, **request.pop("headers", {})}
    return (
        with_lane.open(path, headers=headers, **request),
        flask_only.open(path, headers=headers, **request),
    )


def _same(a: Response, b: Response) -> None:
    assert (a.status_code, a.get_data()) == (b.status_code, b.get_data())
    assert sorted(a.headers.items()) == sorted(b.headers.items())


def _recorded(db: Database, since: int) -> list[tuple[Any, ...]]:
    return [tuple(row[k] for k in AUDITED) for row in audit_rows(db)[since:]]


@pytest.fixture
def patient_ids(client: FlaskClient) -> dict[str, int]:
    kept = new_patient(client, name="Kept Patient")["id"]
    gone = new_patient(client, name="Deleted Patient")["id"]
    assert client.delete(f"/patients/{gone}").status_code == 204
    return {"kept": kept, "deleted": gone, "missing": 2_000_000_000}


@pytest.mark.parametrize("role", ["viewer", "clinician", "admin"])
@pytest.mark.parametrize("which", ["kept", "deleted", "missing"])
def test_the_lane_answers_and_records_as_flask_does(
    app: OpenAPI,
    db: Database,
    accounts: dict[str, Account],
    patient_ids: dict[str, int],
    role: str,
    which: str,
) -> None:
    before = len(audit_rows(db))
    token = {"Authorization": f"Bearer {accounts[role].token}"}
    lane, flask = _both(app, f"/patients/{patient_ids[which]}", headers=token)
    _same(lane, flask)
    assert lane.status_code == (200 if which == "kept" else 404)
    first, second = _recorded(db, before)[:1], _recorded(db, before)[1:]
    assert first == second
    assert first[0][:3] == (
        "patient.read",
        "success" if which == "kept" else "not_found",
        patient_ids[which],
    )


LISTINGS = [
    "",
    "limit=1",
    "limit=500&offset=1",
    "q=listed",
    "q=",
    "q=zo%C3%AB+list",
    "disease=FLU&gender=female",
    "sort=-name&limit=2",
    "sort=age",
]


@pytest.mark.parametrize("role", ["viewer", "clinician", "admin"])
@pytest.mark.parametrize("query", LISTINGS)
def test_the_lane_lists_and_records_as_flask_does(
    app: OpenAPI, db: Database, client: FlaskClient, accounts: dict[str, Account], role: str,
    query: str,
) -> None:  # fmt: skip
    new_patient(client, name="Listed Patient", disease="flu", gender="female")
    new_patient(client, name="Zoë Listed", disease="cold")
    before = len(audit_rows(db))
    token = {"Authorization": f"Bearer {accounts[role].token}"}
    lane, flask = _both(app, "/patients", query_string=query, headers=token)
    _same(lane, flask)
    assert lane.status_code == 200
    assert lane.json["items"]  # type: ignore[index]
    first, second = _recorded(db, before)[:1], _recorded(db, before)[1:]
    assert first == second
    assert first[0][:2] == ("patient.list", "success")


def test_the_lane_serves_the_plain_calls_without_flask(
    app: OpenAPI, accounts: dict[str, Account], patient_ids: dict[str, int]
) -> None:
    lane = _lane(app)

    def no_flask(*_args: object) -> None:
        raise AssertionError("the plain read went to Flask")

    lane.wsgi_app = no_flask
    client = Client(app.wsgi_app, Response)
    for scheme in ("Bearer", "bearer"):
        headers = {"Authorization": f"{scheme} {accounts['viewer'].token}"}
        response = client.get(f"/patients/{patient_ids['kept']}", headers=headers)
        assert response.status_code == 200
        assert response.json["name"] == "Kept Patient"  # type: ignore[index]
        listing = client.get("/patients", query_string="q=kept&limit=5", headers=headers)
        assert listing.status_code == 200
        assert [p["name"] for p in listing.json["items"]] == ["Kept Patient"]  # type: ignore[index]


def _other_forms(engine: Any, accounts: dict[str, Account], pid: int) -> list[dict[str, Any]]:
    viewer = accounts["viewer"]
    past = datetime.now(UTC) - timedelta(days=1)
    revoked = add_token(engine, viewer.user_id, "revoked", revoked=True)
    expired = add_token(engine, viewer.user_id, "expired", expires_at=past)
    of_disabled = add_token(engine, add_user(engine, "gone-user", "viewer", disabled=True))
    path, good = f"/patients/{pid}", {"Authorization": f"Bearer {viewer.token}"}
    return [
        {"path": path},  # no credentials
        *({"path": path, "headers": {"Authorization": value}}
          for value in ["Bearer nope", "Basic abc", "Bearer ", f"Bearer {revoked}",
                        f"Bearer {expired}", f"Bearer {of_disabled}"]),
        {"path": path, "query_string": "a=1&a=2", "headers": good},
        {"path": path, "headers": {**good, "Cookie": "healthcare_session=x"}},
        {"path": path, "method": "HEAD", "headers": good},
        {"path": path, "method": "DELETE", "headers": good},
        *({"path": other, "headers": good}
          for other in [f"/patients/0{pid}", "/patients/0", f"/patients/{2**31}", f"{path}/",
                        f"{path}/access-log", "/patients/", "/patients/deleted"]),
        {"path": "/patients"},  # a listing: no credentials
        {"path": "/patients", "headers": {"Authorization": f"Bearer {revoked}"}},
        {"path": "/patients", "headers": {**good, "Cookie": "healthcare_session=x"}},
        {"path": "/patients", "method": "HEAD", "headers": good},
        *({"path": "/patients", "query_string": query, "headers": good}
          for query in ["limit=5&limit=6", "q=a&q=b", "unknown=1", "limit=0", "limit=501",
                        "limit=ten", "offset=-1", "gender=robot", "sort=colour", "q=" + "x" * 201,
                        "limit=%FF"]),
    ]  # fmt: skip


def test_every_other_form_of_the_call_goes_to_flask(
    app: OpenAPI, db: Database, accounts: dict[str, Account], patient_ids: dict[str, int]
) -> None:
    lane = _lane(app)
    flask = lane.wsgi_app
    calls: list[str] = []

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        calls.append(environ["PATH_INFO"])
        return flask(environ, start_response)

    lane.wsgi_app = counted
    for request in _other_forms(db.engine, accounts, patient_ids["kept"]):
        before = len(calls)
        lane_answer, flask_answer = _both(app, **request)
        assert len(calls) == before + 2, request  # the lane passed it on; Flask alone, too
        _same(lane_answer, flask_answer)


@pytest.mark.parametrize("use_case", ["get_patient", "list_patients"])
def test_an_unexpected_error_is_answered_and_logged_as_flask_does(
    app: OpenAPI,
    accounts: dict[str, Account],
    patient_ids: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    use_case: str,
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(service, use_case, broken)
    token = {"Authorization": f"Bearer {accounts['viewer'].token}"}
    path = f"/patients/{patient_ids['kept']}" if use_case == "get_patient" else "/patients"
    lane, flask = _both(app, path, headers=token)
    _same(lane, flask)
    assert lane.status_code == 500
    assert REQUEST_ID in lane.json["detail"]  # type: ignore[index]
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert len(logged) == 2
    assert "the database went away" not in lane.get_data(as_text=True)


@pytest.mark.parametrize(("hops", "recorded"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_the_lane_records_the_client_address_as_configured(
    make_app: Callable[..., OpenAPI],
    accounts: dict[str, Account],
    patient_ids: dict[str, int],
    hops: int,
    recorded: str,
) -> None:
    """Behind a trusted proxy the forwarded address counts; otherwise a forged one does not."""
    app = make_app(trusted_proxies=hops, trusted_proxy_addresses="127.0.0.1" if hops else "")
    headers = {"Authorization": f"Bearer {accounts['viewer'].token}",
               "X-Forwarded-For": "203.0.113.9"}  # fmt: skip
    response = app.test_client().get(f"/patients/{patient_ids['kept']}", headers=headers)
    assert response.status_code == 200
    [read] = audit_rows(app.extensions["healthcare.db"], action="patient.read")
    assert read["client"] == recorded
