"""Pages: sign-in and sign-out, and the way in."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from healthcare.auth.login import sign_in
from healthcare.auth.sessions import csrf_token, end_session, start_session
from healthcare.auth.web import CSRF_FIELD, csrf_ok, current_actor, current_session
from healthcare.db.database import current_database
from healthcare.errors import SignInFailed, TooManyAttempts
from healthcare.observability import current_request_id

bp = Blueprint("ui", __name__, template_folder="templates", static_folder="static",
               static_url_path="/ui/static")  # fmt: skip
HOME = "/ui/patients"
MESSAGES = {
    "ended": "You were signed out. Sign in again to continue.",
    "signed_out": "You have signed out.",
}


def template_globals() -> dict[str, Any]:
    return {
        "csrf_field": CSRF_FIELD,
        "csrf_token": lambda: csrf_token(current_app.secret_key, current_session()),  # type: ignore[arg-type]
        "signed_in": lambda: current_session().user,
    }


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never another origin (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return HOME
    parts = urlsplit(target)
    return HOME if parts.scheme or parts.netloc else target


@bp.get("/")
def index() -> Response:
    return redirect(HOME if current_session().user else url_for("ui.login"))


def _login_page(status: int = 200, error: str | None = None, **headers: str) -> Response:
    message = MESSAGES.get(request.args.get("reason", ""))
    page = render_template(
        "login.html",
        error=error,
        message=message,
        username=request.form.get("username", ""),
        next=_safe_next(request.values.get("next")),
    )
    return Response(page, status, headers)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    session = current_session()
    if request.method == "GET":
        if session.user:
            return redirect(_safe_next(request.args.get("next")))
        return _login_page()
    if not csrf_ok():
        return _login_page(400, "This sign-in form had expired. Please try again.")
    try:
        actor = sign_in(
            current_database(),
            current_app.extensions["healthcare.login_policy"],
            request.form.get("username", ""),
            request.form.get("password", ""),
            client=request.remote_addr or "-",
            request_id=current_request_id(),
        )
    except TooManyAttempts as exc:
        return _login_page(429, exc.detail, **{"Retry-After": str(exc.retry_after)})
    except SignInFailed as exc:
        return _login_page(401, exc.detail)
    start_session(current_database(), session, actor)
    return redirect(_safe_next(request.form.get("next")), 303)


@bp.post("/logout")
def logout() -> Response:
    end_session(current_database(), current_session(), current_actor(), "signed out")
    return redirect(url_for("ui.login", reason="signed_out"), 303)
