"""Enforcement for every request: who is calling (a bearer token or a browser session), 401
for nobody, CSRF for browsers, and the actor the use cases run on behalf of.

Deny by default: only the endpoints in ``PUBLIC_ENDPOINTS`` answer without credentials. What
a signed-in role may do is decided by the use cases (``authorize``), for API and UI alike."""

from __future__ import annotations

import dataclasses
from typing import cast

from flask import Flask, Response, current_app, flash, g, redirect, request, session, url_for

from healthcare import clock
from healthcare.api.problems import problem
from healthcare.auth.access import Actor
from healthcare.auth.denials import AnonymousDenials
from healthcare.auth.sessions import (
    ServerSession,
    ServerSessionInterface,
    SessionPolicy,
    csrf_valid,
)
from healthcare.auth.tokens import actor_for_token
from healthcare.db.database import current_database
from healthcare.observability import REQUEST_ID_KEY

PUBLIC_ENDPOINTS = frozenset(
    {
        "health_api.healthz",
        "health_api.readyz",
        "static",
        "ui.static",
        "ui.index",
        "ui.login",
        "docs.docs_script",
        "docs.docs_asset",
        "fhir.metadata",
    }
)
# What a user whose password must be changed (the generated first admin's) may still do.
PASSWORD_CHANGE_ENDPOINTS = frozenset(
    {"ui.password", "ui.logout", "users_api.change_password", "users_api.me"}
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
REALM = 'Bearer realm="healthcare"'
DENIALS = "healthcare.anonymous_denials"


def current_actor() -> Actor:
    return cast(Actor, g.actor)


def current_session() -> ServerSession:
    return cast(ServerSession, session._get_current_object())  # type: ignore[attr-defined]


def csrf_ok() -> bool:
    token = request.form.get(CSRF_FIELD) if request.form else None
    token = token or request.headers.get(CSRF_HEADER)
    return csrf_valid(current_app.secret_key, current_session(), token)  # type: ignore[arg-type]


def _refuse(status: int, reason: str, *, invalid_token: bool = False) -> Response:
    _record_refusal(current_actor(), f"{reason}: {request.method} {request.path}")
    if request.blueprint == "ui" and status == 401:
        ended = current_session().ended
        return redirect(url_for("ui.login", next=request.path, reason=ended and "ended"))
    if status == 401:
        response = problem(401, "Unauthorized", "Sign in, or send a valid bearer token.")
        challenge = REALM + (', error="invalid_token"' if invalid_token else "")
        response.headers["WWW-Authenticate"] = challenge
        return response
    return problem(403, "Forbidden", "The form's CSRF token is missing or stale: reload the page.")


def _record_refusal(actor: Actor, detail: str) -> None:
    """Every refusal of a signed-in user; anonymous ones in bounded number (see denials)."""
    if actor.user_id is None:
        folded = cast(AnonymousDenials, current_app.extensions[DENIALS]).admit(clock.utc_now())
        if folded is None:
            return
        if folded:
            detail = f"(+{folded} anonymous refusals not recorded singly) {detail}"
    current_database().audit_soon(actor.event("access.denied", outcome="denied", detail=detail))


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer ...` header; None for any other form."""
    scheme, _, token = authorization.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _bearer(authorization: str, client: str | None, request_id: str) -> tuple[Actor | None, str]:
    token = bearer_token(authorization)
    if token is None:
        return None, "malformed Authorization header"
    return actor_for_token(current_database(), token, client, request_id)


def _browser(client: str | None, request_id: str) -> tuple[Actor | None, str]:
    browser = current_session()
    if browser.user is None:
        return None, f"session ended ({browser.ended})" if browser.ended else "no credentials"
    return dataclasses.replace(browser.user, client=client, request_id=request_id), "session"


def identified_caller() -> Actor | None:
    """On a public endpoint: who the caller is, if their credentials are good (nothing is
    recorded either way)."""
    environ = request.environ
    client, request_id = request.remote_addr, environ.get(REQUEST_ID_KEY, "-")
    authorization = environ.get("HTTP_AUTHORIZATION")
    if authorization is not None:
        return _bearer(authorization, client, request_id)[0]
    return _browser(client, request_id)[0]


def authenticate() -> Response | None:
    # The request is read once, not through its proxy per attribute: this runs on every call.
    current = request._get_current_object()  # type: ignore[attr-defined]
    endpoint = current.endpoint
    if endpoint is None or endpoint in PUBLIC_ENDPOINTS:
        return None  # unknown paths get their 404/405; public pages check what they need
    environ = current.environ
    client, request_id = current.remote_addr, environ.get(REQUEST_ID_KEY, "-")
    authorization = environ.get("HTTP_AUTHORIZATION")
    if authorization is not None:
        actor, reason = _bearer(authorization, client, request_id)
    else:
        actor, reason = _browser(client, request_id)
    g.actor = actor or Actor(None, None, None, None, client, request_id)
    if actor is None:
        return _refuse(401, reason, invalid_token=authorization is not None)
    # A browser sends its cookie by itself, even on a forged request; a bearer token it never does.
    if authorization is None and request.method not in SAFE_METHODS and not csrf_ok():
        return _refuse(403, "missing or wrong CSRF token")
    if actor.password_change_due and endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        return _password_change_first()
    return None


def _password_change_first() -> Response:
    """The generated first password was handed over in a file: it is replaced before use."""
    if request.blueprint == "ui":
        flash({"text": "Choose a new password before you continue."})
        return redirect(url_for("ui.password"), 303)
    return problem(
        403, "Password change required", "Change your password first: POST /me/password."
    )


def init_app(app: Flask, policy: SessionPolicy) -> None:
    app.session_interface = ServerSessionInterface(policy)
    app.extensions[DENIALS] = AnonymousDenials()
    app.before_request(authenticate)
