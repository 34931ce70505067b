"""Deny by default: every route, called by every kind of caller.

The table below names each endpoint's sample request and the permission it needs; a route
that is added without an entry here fails ``test_every_route_is_in_the_matrix``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from sqlalchemy import Engine

from healthcare.auth.access import Role
from healthcare.db.database import Database
from tests.conftest import Account, add_token, add_user, audit_rows, bearer, new_patient

# Who may, spelled out here rather than taken from the code's grants table.
SIGNED_IN = frozenset({"viewer", "clinician", "admin"})
READERS = SIGNED_IN
WRITERS = frozenset({"clinician", "admin"})
ADMINS = frozenset({"admin"})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    allowed: frozenset[str] | None  # None: public
    body: dict[str, Any] | None = None


PATIENT = {"name": "Matrix Patient", "age": 40}
FHIR_PATIENT = {
    "resourceType": "Patient",
    "name": [{"family": "Matrix"}],
    "birthDate": "1980-01-02",
}
ROUTES: dict[str, Route] = {
    "health_api.healthz": Route("GET", "/healthz", None),
    "health_api.readyz": Route("GET", "/readyz", None),
    "ui.index": Route("GET", "/", None),
    "ui.login": Route("GET", "/login", None),
    "ui.static": Route("GET", "/ui/static/style.css", None),
    "static": Route("GET", "/static/none.css", None),
    "docs.docs_script": Route("GET", "/docs/init.js", None),
    "docs.docs_asset": Route("GET", "/docs/assets/css/swagger-ui.css", None),
    "docs.docs_page": Route("GET", "/docs", SIGNED_IN),
    "docs.openapi_document": Route("GET", "/openapi.json", SIGNED_IN),
    "ui.logout": Route("POST", "/logout", SIGNED_IN),
    "ui.patient_list": Route("GET", "/ui/patients", READERS),
    "ui.patient_detail": Route("GET", "/ui/patients/{pid}", READERS),
    "ui.patient_new": Route("GET", "/ui/patients/new", WRITERS),
    "ui.patient_edit": Route("GET", "/ui/patients/{pid}/edit", WRITERS),
    "ui.patient_delete": Route("GET", "/ui/patients/{pid}/delete", WRITERS),
    "ui.patient_restore": Route("POST", "/ui/patients/{pid}/restore", WRITERS),
    "ui.patient_unmerge": Route("POST", "/ui/patients/{pid}/unmerge", ADMINS),
    "ui.deleted_list": Route("GET", "/ui/patients/deleted", ADMINS),
    "ui.patient_history": Route("GET", "/ui/patients/{pid}/history", READERS),
    "ui.patient_merge": Route("GET", "/ui/patients/{pid}/merge", WRITERS),
    "ui.password": Route("GET", "/ui/account/password", SIGNED_IN),
    "ui.admin_users": Route("GET", "/ui/admin/users", ADMINS),
    "ui.admin_user_create": Route("POST", "/ui/admin/users", ADMINS),
    "ui.admin_user_role": Route("POST", "/ui/admin/users/spare/role", ADMINS),
    "ui.admin_user_disable": Route("POST", "/ui/admin/users/spare/disable", ADMINS),
    "ui.admin_tokens": Route("GET", "/ui/admin/tokens", ADMINS),
    "ui.admin_token_create": Route("POST", "/ui/admin/tokens", ADMINS),
    "ui.admin_token_revoke": Route("POST", "/ui/admin/tokens/{spare_token}/revoke", ADMINS),
    "ui.admin_audit": Route("GET", "/ui/admin/audit", ADMINS),
    "ui.admin_transfer": Route("GET", "/ui/admin/transfer", ADMINS),
    "ui.admin_export": Route("GET", "/ui/admin/export.csv", ADMINS),
    "ui.admin_import": Route("POST", "/ui/admin/import", ADMINS),
    "users_api.me": Route("GET", "/me", SIGNED_IN),
    "users_api.change_password": Route(
        "POST",
        "/me/password",
        SIGNED_IN,
        {"current_password": "not the password", "new_password": "a new pass phrase 7"},
    ),
    "patients_api.list_patients": Route("GET", "/patients", READERS),
    "patients_api.read": Route("GET", "/patients/{pid}", READERS),
    "patients_api.create": Route("POST", "/patients", WRITERS, PATIENT),
    "patients_api.replace": Route("PUT", "/patients/{pid}", WRITERS, PATIENT),
    "patients_api.patch": Route("PATCH", "/patients/{pid}", WRITERS, {"age": 41}),
    "patients_api.remove": Route("DELETE", "/patients/{pid}", WRITERS),
    "patients_api.restore": Route("POST", "/patients/{pid}/restore", WRITERS),
    "patients_api.list_deleted": Route("GET", "/patients/deleted", ADMINS),
    "patients_api.history": Route("GET", "/patients/{pid}/history", READERS),
    "patients_api.version": Route("GET", "/patients/{pid}/history/1", READERS),
    "patients_api.matches": Route("POST", "/patients/matches", READERS, {"name": "A Match"}),
    "patients_api.merge": Route(
        "POST",
        "/patients/{pid}/merge",
        WRITERS,
        {"source_id": 999999, "source_version": 1, "target_version": 1},
    ),
    "patients_api.unmerge": Route("POST", "/patients/{pid}/unmerge", ADMINS),
    "audit_api.audit": Route("GET", "/audit", ADMINS),
    "audit_api.access_log": Route("GET", "/patients/{pid}/access-log", ADMINS),
    "metrics_api.prometheus": Route("GET", "/metrics", ADMINS),
    "users_api.list_users": Route("GET", "/users", ADMINS),
    "users_api.create_user": Route(
        "POST",
        "/users",
        ADMINS,
        {"username": "newcomer", "role": "viewer", "password": "a long pass phrase 9"},
    ),
    "users_api.change_role": Route("PATCH", "/users/spare", ADMINS, {"role": "clinician"}),
    "users_api.disable_user": Route("POST", "/users/spare/disable", ADMINS),
    "users_api.list_tokens": Route("GET", "/tokens", ADMINS),
    "users_api.create_token": Route(
        "POST", "/tokens", ADMINS, {"username": "spare", "label": "ci"}
    ),
    "users_api.revoke_token": Route("DELETE", "/tokens/{spare_token}", ADMINS),
    "fhir.metadata": Route("GET", "/fhir/metadata", None),
    "fhir.search": Route("GET", "/fhir/Patient", READERS),
    "fhir.create": Route("POST", "/fhir/Patient", WRITERS, FHIR_PATIENT),
    "fhir.read": Route("GET", "/fhir/Patient/{pid}", READERS),
    "fhir.update": Route("PUT", "/fhir/Patient/{pid}", WRITERS, {**FHIR_PATIENT, "id": "{pid}"}),
    "fhir.delete": Route("DELETE", "/fhir/Patient/{pid}", WRITERS),
    "fhir.history": Route("GET", "/fhir/Patient/{pid}/_history", READERS),
    "fhir.vread": Route("GET", "/fhir/Patient/{pid}/_history/1", READERS),
}
UNAUTHENTICATED = ["anonymous", "garbage token", "revoked token", "expired token", "disabled user"]


def test_every_route_is_in_the_matrix(app: OpenAPI) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints == set(ROUTES)


@dataclass
class World:
    headers: dict[str, dict[str, str]]
    ids: dict[str, int]


@pytest.fixture
def world(engine: Engine, accounts: dict[str, Account], client: FlaskClient) -> World:
    headers = {role: bearer(account.token) for role, account in accounts.items()}
    headers["anonymous"] = {}
    headers["garbage token"] = bearer("hct_not-a-token")
    owner = accounts["clinician"].user_id
    headers["revoked token"] = bearer(add_token(engine, owner, "old", revoked=True))
    past = datetime.now(UTC) - timedelta(minutes=1)
    headers["expired token"] = bearer(add_token(engine, owner, "stale", expires_at=past))
    gone = add_user(engine, "gone", "admin", disabled=True)
    headers["disabled user"] = bearer(add_token(engine, gone, "left"))
    spare = add_user(engine, "spare", "viewer")
    ids = {"pid": new_patient(client)["id"], "spare_token": 0}
    ids["spare_token"] = client.post("/tokens", json={"username": "spare", "label": "x"}).json["id"]
    assert spare
    return World(headers, ids)


def _call(client: FlaskClient, route: Route, world: World, caller: str) -> Any:
    path = route.path.format(**world.ids)
    body = route.body and {
        key: value.format(**world.ids) if isinstance(value, str) else value
        for key, value in route.body.items()
    }
    return client.open(path, method=route.method, json=body, headers=world.headers[caller])


def _allowed(route: Route, role: Role) -> bool:
    return route.allowed is not None and role.value in route.allowed


@pytest.mark.parametrize("endpoint", sorted(ROUTES))
def test_route_by_caller(endpoint: str, anonymous: FlaskClient, world: World, db: Database) -> None:
    route = ROUTES[endpoint]
    for caller in UNAUTHENTICATED:
        response = _call(anonymous, route, world, caller)
        if route.allowed is None:
            assert response.status_code not in (401, 403), caller
        elif endpoint.startswith("ui."):
            assert response.status_code == 302, caller
            assert response.location.startswith("/login"), caller
        else:
            assert response.status_code == 401, (caller, response.data)
            assert response.headers["WWW-Authenticate"].startswith('Bearer realm="healthcare"')
    for role in Role:
        response = _call(anonymous, route, world, role.value)
        expected_denied = route.allowed is not None and not _allowed(route, role)
        assert (response.status_code == 403) == expected_denied, (role, response.data)
        assert response.status_code != 401, role
    if route.allowed not in (None, SIGNED_IN):
        denied = audit_rows(db, action="access.denied", outcome="denied")
        refused_roles = {row["username"] for row in denied if row["user_id"] is not None}
        assert refused_roles == {r.value for r in Role if not _allowed(route, r)}
        anonymous_refusals = [row for row in denied if row["user_id"] is None]
        assert len(anonymous_refusals) == len(UNAUTHENTICATED)


def test_invalid_token_says_so(anonymous: FlaskClient, world: World) -> None:
    response = anonymous.get("/patients", headers=world.headers["expired token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.mimetype == "application/problem+json"


def test_a_malformed_authorization_header_is_refused(anonymous: FlaskClient) -> None:
    for value in ("Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer    ", "token"):
        assert anonymous.get("/patients", headers={"Authorization": value}).status_code == 401


def test_roles_take_effect_at_once(client: FlaskClient, client_as: Callable[..., Any]) -> None:
    viewer = client_as("viewer")
    assert viewer.post("/patients", json=PATIENT).status_code == 403
    assert client.patch("/users/viewer", json={"role": "clinician"}).status_code == 200
    assert viewer.post("/patients", json=PATIENT).status_code == 201
