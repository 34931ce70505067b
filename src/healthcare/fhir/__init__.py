"""FHIR R4: a third thin front end beside the JSON API and the browser pages."""

from __future__ import annotations

from flask import Flask

from healthcare.fhir.outcome import problems_as_outcomes
from healthcare.fhir.views import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.after_request(problems_as_outcomes)
