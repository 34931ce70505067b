"""The API's most frequent call, `GET /patients/{id}` with a bearer token, without Flask's
per-request machinery.

Flask's request context, routing, hooks and response objects cost about 170 µs of a read's
~260 µs here, twice what the read, its authentication and its audit row cost together. This
lane answers the plain form of that call: a canonical id, no query string, no cookie, a
bearer token that is valid. It runs the same code as the Flask route for everything that
matters: the token is checked by ``actor_for_token``, the role and the audit row by
``service.get_patient``, refusals are shaped by the same problem builders, and the request
id, security headers and access log come from the middleware around both. Any other form of
the call (HEAD, a query string, a cookie, a bad or missing token, an id out of range) goes to
Flask untouched, before anything has been read or recorded; ``tests/api/test_fast_lane.py``
holds both paths to the same answers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Response

from healthcare.api.patients import patient_response
from healthcare.api.problems import service_problem, unexpected_problem
from healthcare.auth.access import Actor
from healthcare.auth.tokens import actor_for_token
from healthcare.auth.web import bearer_token
from healthcare.db.database import Database
from healthcare.errors import ServiceError
from healthcare.observability import REQUEST_ID_KEY
from healthcare.patients import service
from healthcare.patients.schemas import MAX_PATIENT_ID

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PATIENT_PATH = re.compile(r"/patients/([1-9][0-9]{0,9})")


class FastLane:
    def __init__(self, wsgi_app: WSGIApplication, db: Database) -> None:
        self.wsgi_app = wsgi_app
        self.db = db

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        patient_id, token = self._plain_read(environ)
        if patient_id is None or token is None:
            return self.wsgi_app(environ, start_response)
        request_id = environ.get(REQUEST_ID_KEY, "-")
        actor, _why = actor_for_token(self.db, token, environ.get("REMOTE_ADDR"), request_id)
        if actor is None:
            return self.wsgi_app(environ, start_response)  # Flask refuses it, and records that
        return self._read(patient_id, actor, request_id)(environ, start_response)

    @staticmethod
    def _plain_read(environ: WSGIEnvironment) -> tuple[int | None, str | None]:
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or environ.get("QUERY_STRING")
            or "HTTP_COOKIE" in environ
        ):
            return None, None
        match = PATIENT_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or int(match.group(1)) > MAX_PATIENT_ID:
            return None, None
        return int(match.group(1)), bearer_token(environ.get("HTTP_AUTHORIZATION", ""))

    def _read(self, patient_id: int, actor: Actor, request_id: str) -> Response:
        try:
            patient = service.get_patient(self.db, actor, patient_id)
        except ServiceError as exc:
            return service_problem(exc)
        except Exception as exc:  # answered as Flask's handler for the unexpected answers it
            return unexpected_problem(exc, request_id)
        return patient_response(patient)
