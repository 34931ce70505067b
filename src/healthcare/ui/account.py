"""Signing in and out, the way in, and changing one's own password."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, current_app, flash, redirect, render_template, request, url_for

from healthcare.auth.login import sign_in
from healthcare.auth.passwords import MIN_LENGTH
from healthcare.auth.sessions import end_session, start_session
from healthcare.auth.users import change_password
from healthcare.auth.web import csrf_ok, current_actor, current_session
from healthcare.db.database import current_database
from healthcare.errors import Invalid, SignInFailed, TooManyAttempts
from healthcare.observability import current_request_id
from healthcare.ui.blueprint import HOME, bp

MESSAGES = {
    "ended": "You were signed out. Sign in again to continue.",
    "idle": "You were signed out after a period without activity, to protect patient data.",
    "signed_out": "You have signed out.",
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
    page = render_template(
        "login.html",
        error=error,
        message=MESSAGES.get(request.args.get("reason", "")),
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
    idle = request.form.get("reason") == "idle"
    reason = "idle timeout (browser)" if idle else "signed out"
    end_session(current_database(), current_session(), current_actor(), reason)
    return redirect(url_for("ui.login", reason="idle" if idle else "signed_out"), 303)


@bp.route("/ui/account/password", methods=["GET", "POST"])
def password() -> Response | str:
    if request.method == "GET":
        return render_template("account/password.html", errors={}, min_length=MIN_LENGTH)
    form = request.form
    errors = {}
    if form.get("new_password", "") != form.get("confirm_password", ""):
        errors["confirm_password"] = "The two new passwords are not the same."  # noqa: S105
    else:
        try:
            change_password(
                current_database(),
                current_actor(),
                current_app.extensions["healthcare.login_policy"],
                form.get("current_password", ""),
                form.get("new_password", ""),
                keep_session=current_session().key,
            )
        except TooManyAttempts as exc:
            page = render_template(
                "account/password.html",
                errors={"current_password": exc.detail},
                min_length=MIN_LENGTH,
            )
            return Response(page, 429, {"Retry-After": str(exc.retry_after)})
        except Invalid as exc:
            field = "current_password" if "current password" in exc.detail else "new_password"
            errors[field] = exc.detail
    if errors:
        page = render_template("account/password.html", errors=errors, min_length=MIN_LENGTH)
        return Response(page, 422)
    flash({"text": "Your password has been changed. Your other sessions were signed out."})
    return redirect(HOME, 303)
