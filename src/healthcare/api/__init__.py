"""The JSON API: thin views over the service layer."""

from __future__ import annotations

from flask_openapi3 import OpenAPI

from healthcare.api import audit, docs, health, patients, problems, users


def init_app(app: OpenAPI) -> None:
    problems.init_app(app)
    app.register_api(patients.api)
    app.register_api(audit.api)
    app.register_api(users.api)
    app.register_api(health.api)
    app.register_blueprint(docs.bp)
