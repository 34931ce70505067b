"""Building JSON responses fast and uniformly."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, request

from healthcare.api.problems import Problem

PROBLEM_RESPONSES: dict[int, type[Problem]] = dict.fromkeys(
    (400, 404, 405, 413, 415, 422, 500), Problem
)


def json_response(body: Any, status: int = 200, **headers: str) -> Response:
    return Response(orjson.dumps(body), status, headers, mimetype="application/json")


def expected_version() -> int | None:
    """The version named by If-Match: None when absent or '*', 0 (matches nothing) when unusable."""
    if_match = request.if_match
    if not if_match or if_match.star_tag:
        return None
    tags = if_match.as_set(include_weak=False)
    return next((int(tag) for tag in tags if tag.isdigit()), 0)


def etag(version: int) -> str:
    return f'"{version}"'
