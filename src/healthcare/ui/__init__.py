"""The browser interface: server-rendered pages over the same use cases as the API."""

from __future__ import annotations

from flask import Flask

from healthcare.ui import patients, views


def init_app(app: Flask) -> None:
    assert patients.bp is views.bp  # the patient pages are registered on the one blueprint
    app.register_blueprint(views.bp)
    app.context_processor(views.template_globals)
