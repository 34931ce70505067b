"""Liveness and readiness probes, open to load balancers and orchestrators.

Anonymous callers learn only up or down (issue 13, item 11); a caller with valid credentials
also gets the database kind and the schema revision."""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from healthcare.api.problems import Problem, problem
from healthcare.api.responses import PROBLEM_RESPONSES, json_response
from healthcare.auth.web import identified_caller
from healthcare.db import migrate
from healthcare.db.database import current_database
from healthcare.draining import is_draining

api = APIBlueprint(
    "health_api", __name__, abp_tags=[Tag(name="health")], abp_responses=PROBLEM_RESPONSES
)


class Health(BaseModel):
    status: str


class Ready(Health):
    database: str | None = Field(None, description="For a signed-in caller only")
    schema_revision: str | None = Field(None, description="For a signed-in caller only")


@api.get("/healthz", summary="The process answers", responses={200: Health})
def healthz() -> Response:
    return json_response({"status": "ok"})


@api.get(
    "/readyz",
    summary="The server is not draining, the database answers and its schema is current",
    responses={200: Ready, 503: Problem},
)
def readyz() -> Response:
    if is_draining(current_app.extensions["healthcare.settings"].port):
        return problem(503, "Not ready", "The server is draining: it is about to stop.")
    engine = current_database().engine
    try:
        revision = migrate.current_revision(engine)
    except SQLAlchemyError:
        return problem(503, "Not ready", "The database does not answer.")
    identified = identified_caller() is not None
    if revision != migrate.head_revision():
        if not identified:
            return problem(503, "Not ready", "The database schema is not current.")
        detail = f"The schema is at {revision or 'nothing'}, not {migrate.head_revision()}: "
        return problem(503, "Not ready", detail + "run `healthcare db upgrade`.")
    if not identified:
        return json_response({"status": "ok"})
    return json_response(
        {"status": "ok", "database": engine.dialect.name, "schema_revision": revision}
    )
