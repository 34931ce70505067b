"""The browser interface: server-rendered pages over the same use cases as the API."""

from __future__ import annotations

from flask import Flask

from healthcare.ui import account, admin, patients, transfer
from healthcare.ui.blueprint import bp, page_for, template_globals

PAGES = (account, admin, patients, transfer)  # each adds its routes to the one blueprint


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(template_globals)
    app.extensions["healthcare.page_errors"] = page_for
