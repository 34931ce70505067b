"""Admin pages: users (create, change role, disable), API tokens (create, shown once; revoke)
and the audit trail with filters."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from pydantic import ValidationError

from healthcare.audit.queries import AuditQuery, find_events
from healthcare.auth import tokens, users
from healthcare.auth.access import Permission, Role, authorize
from healthcare.auth.schemas import TokenIn, UserIn, UserPatch
from healthcare.auth.web import current_actor
from healthcare.db.database import current_database
from healthcare.errors import ServiceError
from healthcare.ui.blueprint import bp
from healthcare.ui.forms import submitted, validated

USER_FIELDS = ("username", "role", "password")
PAGE_PERMISSIONS = {
    "ui.admin_audit": Permission.READ_AUDIT,
    "ui.admin_transfer": Permission.BULK_TRANSFER,
    "ui.admin_export": Permission.BULK_TRANSFER,
    "ui.admin_import": Permission.BULK_TRANSFER,
}  # the others: MANAGE_USERS
TOKEN_FIELDS = ("username", "label", "expires_in_days")
AUDIT_FILTERS = ("username", "action", "patient_id", "since", "until", "before")


@bp.before_request
def _admins_only() -> None:
    """Refuse before reading any form: a viewer's bad form is a 403, not a form error."""
    endpoint = request.endpoint or ""
    if endpoint.startswith("ui.admin_"):
        permission = PAGE_PERMISSIONS.get(endpoint, Permission.MANAGE_USERS)
        authorize(current_database(), current_actor(), permission, endpoint)


def _users_page(values: dict[str, str], errors: dict[str, str], status: int = 200) -> Response:
    listed = users.list_users(current_database(), current_actor())
    page = render_template(
        "admin/users.html", users=listed, roles=list(Role), values=values, errors=errors
    )
    return Response(page, status)


@bp.get("/ui/admin/users")
def admin_users() -> Response:
    return _users_page(dict.fromkeys(USER_FIELDS, ""), {})


@bp.post("/ui/admin/users")
def admin_user_create() -> Response:
    values = submitted(request.form, USER_FIELDS)
    values["password"] = request.form.get("password", "")  # as typed, spaces and all
    data, errors = validated(UserIn, values)
    if data is None:
        return _users_page({**values, "password": ""}, errors, 422)
    try:
        users.create_user(current_database(), current_actor(), data.username, data.role,
                          data.password)  # fmt: skip
    except ServiceError as exc:
        field = "password" if exc.status == 422 else "username"
        return _users_page({**values, "password": ""}, {field: exc.detail}, exc.status)
    flash({"text": f"User {data.username} was created as {data.role}."})
    return redirect(url_for("ui.admin_users"), 303)


def _user_action(action: Any, done: str) -> Response:
    try:
        action(current_database(), current_actor())
    except ServiceError as exc:
        flash({"text": exc.detail, "error": True})
    else:
        flash({"text": done})
    return redirect(url_for("ui.admin_users"), 303)


@bp.post("/ui/admin/users/<username>/role")
def admin_user_role(username: str) -> Response:
    data, errors = validated(UserPatch, {"role": request.form.get("role", "")})
    if data is None:
        flash({"text": errors.get("role", "Choose a role."), "error": True})
        return redirect(url_for("ui.admin_users"), 303)
    return _user_action(
        lambda db, actor: users.set_role(db, actor, username, data.role),
        f"{username} is now {data.role}.",
    )


@bp.post("/ui/admin/users/<username>/disable")
def admin_user_disable(username: str) -> Response:
    return _user_action(
        lambda db, actor: users.disable_user(db, actor, username),
        f"{username} was disabled and signed out everywhere.",
    )


def _tokens_page(
    values: dict[str, str], errors: dict[str, str], created: dict | None = None, status: int = 200
) -> Response:
    db, actor = current_database(), current_actor()
    page = render_template(
        "admin/tokens.html",
        tokens=tokens.list_tokens(db, actor),
        users=[u for u in users.list_users(db, actor) if not u["disabled_at"]],
        values=values,
        errors=errors,
        created=created,
    )
    return Response(page, status)


@bp.get("/ui/admin/tokens")
def admin_tokens() -> Response:
    return _tokens_page(dict.fromkeys(TOKEN_FIELDS, ""), {})


@bp.post("/ui/admin/tokens")
def admin_token_create() -> Response:
    values = submitted(request.form, TOKEN_FIELDS)
    wanted = {k: v for k, v in values.items() if v}
    if wanted.get("expires_in_days", "").isdigit():
        wanted["expires_in_days"] = int(wanted["expires_in_days"])  # type: ignore[assignment]
    data, errors = validated(TokenIn, wanted)
    if data is None:
        return _tokens_page(values, errors, status=422)
    try:
        created = tokens.create_token(current_database(), current_actor(), data.username,
                                      data.label, data.expires_in_days)  # fmt: skip
    except ServiceError as exc:
        return _tokens_page(values, {"username": exc.detail}, status=exc.status)
    return _tokens_page(dict.fromkeys(TOKEN_FIELDS, ""), {}, created=created, status=201)


@bp.post("/ui/admin/tokens/<int:token_id>/revoke")
def admin_token_revoke(token_id: int) -> Response:
    token = tokens.revoke_token(current_database(), current_actor(), token_id)
    flash({"text": f"Token {token['label']!r} of {token['username']} was revoked."})
    return redirect(url_for("ui.admin_tokens"), 303)


@bp.get("/ui/admin/audit")
def admin_audit() -> Response:
    filters = {k: v.strip() for k, v in request.args.items() if k in AUDIT_FILTERS and v.strip()}
    try:
        query = AuditQuery(**filters)
    except ValidationError as exc:
        problem = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors(include_url=False))
        query, problem = AuditQuery(), f"Those filters could not be used ({problem})."
    else:
        problem = None
    page = find_events(current_database(), current_actor(), query)
    shown = {k: v for k, v in filters.items() if k != "before"}
    older = (
        url_for("ui.admin_audit", **shown, before=page["next_before"])
        if page["next_before"]
        else None
    )
    html = render_template(
        "admin/audit.html", page=page, filters=shown, problem=problem, older=older
    )
    return Response(html, 200)
