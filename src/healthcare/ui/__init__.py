"""The browser interface: server-rendered pages over the same use cases as the API."""

from __future__ import annotations

from flask import Flask

from healthcare.ui import views


def init_app(app: Flask) -> None:
    app.register_blueprint(views.bp)
    app.context_processor(views.template_globals)
