"""/metrics: the Prometheus text format, for admins' tokens only.

Behind the same bearer-token check as every other call rather than on a second, unauthenticated
port: one listener to bind, publish and firewall, and the figures (request rates per route,
sign-in failures) say something about the clinic's activity. Prometheus sends the token with
`authorization: {credentials_file: ...}` in its scrape config."""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from healthcare import metrics
from healthcare.api.problems import Problem
from healthcare.api.responses import PROBLEM_RESPONSES
from healthcare.auth.access import Permission, authorize
from healthcare.auth.web import current_actor
from healthcare.db.database import current_database

api = APIBlueprint(
    "metrics_api",
    __name__,
    abp_tags=[Tag(name="metrics", description="Prometheus metrics of this server (admins)")],
    abp_responses={**PROBLEM_RESPONSES, 401: Problem, 403: Problem},
    abp_security=[{"bearer": []}],
)


PROMETHEUS_TEXT = {
    "description": "The Prometheus text exposition format",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


@api.get(
    "/metrics",
    summary="Prometheus metrics, added up over this server's processes",
    responses={200: PROMETHEUS_TEXT},
)
def prometheus() -> Response:
    authorize(current_database(), current_actor(), Permission.READ_AUDIT, "read metrics")
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)
