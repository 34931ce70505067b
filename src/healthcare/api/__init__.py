"""The JSON API: thin views over the service layer."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_openapi3 import OpenAPI
from werkzeug.datastructures import MultiDict

from healthcare.api import audit, docs, health, metrics, patients, problems, users
from healthcare.api.problems import problem
from healthcare.errors import Invalid


def repeated_parameters(args: MultiDict[str, str]) -> list[str]:
    """The query parameters given more than once. No query parameter of the API takes a
    list: `?disease=a&disease=b` is an error, not a silent choice of one of them."""
    return sorted(key for key, values in args.lists() if len(values) > 1)


def one_value_per_query_parameter() -> Any:
    if "&" not in request.environ.get("QUERY_STRING", ""):
        return None  # at most one parameter: nothing can repeat
    if request.blueprint == "fhir":
        return None  # FHIR repeats a parameter for a range (birthdate=ge..&birthdate=le..)
    repeated = repeated_parameters(request.args)
    if not repeated:
        return None
    detail = f"Check these fields: {', '.join(repeated)}."
    if (page := problems.as_page(Invalid(detail))) is not None:
        return page
    errors = [{"field": key, "message": "give this parameter once", "type": "repeated"}
              for key in repeated]  # fmt: skip
    return problem(422, "Invalid data", detail, errors=errors)


def init_app(app: OpenAPI) -> None:
    problems.init_app(app)
    app.before_request(one_value_per_query_parameter)
    app.register_api(patients.api)
    app.register_api(audit.api)
    app.register_api(users.api)
    app.register_api(health.api)
    app.register_api(metrics.api)
    app.register_blueprint(docs.bp)
