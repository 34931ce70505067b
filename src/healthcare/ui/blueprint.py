"""The pages' blueprint and what every page shares: the signed-in user, what they may do,
the CSRF token, flash messages, and the error pages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from healthcare.auth.access import Permission
from healthcare.auth.sessions import csrf_token
from healthcare.auth.web import CSRF_FIELD, current_session
from healthcare.errors import ServiceError
from healthcare.observability import current_request_id

bp = Blueprint("ui", __name__, template_folder="templates", static_folder="static",
               static_url_path="/ui/static")  # fmt: skip
HOME = "/ui/patients"
PAGE_PATHS = ("/ui/", "/login", "/logout")


def template_globals() -> dict[str, Any]:
    session = current_session()
    user = session.user

    def can(permission: str) -> bool:
        return user is not None and user.may(Permission[permission])

    policy = current_app.session_interface.policy  # type: ignore[attr-defined]
    # The server may record activity up to `touch_every` late, so the page signs out that
    # much before the server's limit rather than after it.
    idle_seconds = int((policy.idle - policy.touch_every).total_seconds())
    return {
        "csrf_field": CSRF_FIELD,
        "csrf_token": lambda: csrf_token(current_app.secret_key, current_session()),  # type: ignore[arg-type]
        "user": user,
        "can": can,
        "idle_seconds": idle_seconds,
    }


def page_links(page: dict[str, Any], filters: dict[str, str]) -> dict[str, Any]:
    """Where this page starts and ends in the whole list, and the pages before and after."""
    offset, limit, total = page["offset"], page["limit"], page["total"]

    def at(new_offset: int) -> str:
        return url_for(request.endpoint or "ui.index", **filters, offset=new_offset)

    return {
        "first": offset + 1 if page["items"] else 0,
        "last": offset + len(page["items"]),
        "previous": at(max(0, offset - limit)) if offset > 0 else None,
        "next": at(offset + limit) if offset + limit < total else None,
    }


def is_page_request() -> bool:
    return request.blueprint == "ui" or request.path == "/" or request.path.startswith(PAGE_PATHS)


ERROR_TITLES = {
    403: ("Not allowed", "Your role does not allow this. Ask an administrator if you need it."),
    404: ("Not found", "There is nothing at this address. It may have been deleted or mistyped."),
    405: ("Not allowed", "This page cannot be used that way."),
    500: ("Something went wrong", "The page could not be shown because of an error on our side."),
}


def error_page(status: int, detail: str | None = None) -> tuple[str, int]:
    title, explanation = ERROR_TITLES.get(status, ("Something went wrong", ""))
    page = render_template(
        "error.html",
        status=status,
        title=title,
        explanation=detail or explanation,
        request_id=current_request_id() if status >= 500 else None,
    )
    return page, status


def page_for(exc: Exception) -> tuple[str, int] | None:
    """The HTML answer to an error on a page, or None when the request was for the API."""
    if not is_page_request():
        return None
    if isinstance(exc, ServiceError):
        return error_page(exc.status, exc.detail)
    if isinstance(exc, HTTPException):
        return error_page(exc.code or 500)
    return error_page(500)
