"""The API's two most frequent calls, `GET /patients/{id}` and `GET /patients` with a bearer
token, without Flask's per-request machinery.

Flask's request context, routing, hooks, query validation and response objects cost about
170 µs of a read's ~260 µs here, twice what the read, its authentication and its audit row
cost together. This lane answers the plain form of those calls: a GET with no cookie and a
bearer token that is valid; for a read, a canonical id and no query string; for a listing,
query parameters that each appear once and that the listing's own query model accepts. It
runs the same code as the Flask routes for everything that matters: the token is checked by
``actor_for_token``, the role and the audit row by the service, refusals are shaped by the
same problem builders, and the request id, security headers and access log come from the
middleware around both. Any other form of the call (HEAD, a cookie, a bad or missing token,
an id out of range, a query parameter that is unknown, repeated or invalid) goes to Flask
untouched, before anything has been read or recorded; ``tests/api/test_fast_lane.py`` holds
both paths to the same answers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from flask import Response
from pydantic import ValidationError
from werkzeug.wrappers import Request

from healthcare import metrics
from healthcare.api import repeated_parameters
from healthcare.api.patients import patient_response
from healthcare.api.problems import service_problem, unexpected_problem
from healthcare.api.responses import json_response
from healthcare.auth.access import Actor
from healthcare.auth.tokens import actor_for_token
from healthcare.auth.web import bearer_token
from healthcare.db.database import Database
from healthcare.errors import ServiceError
from healthcare.observability import REQUEST_ID_KEY
from healthcare.patients import service
from healthcare.patients.schemas import MAX_PATIENT_ID, PatientQuery

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PATIENT_PATH = re.compile(r"/patients/([1-9][0-9]{0,9})")
Call = Callable[[Actor], Response]


class FastLane:
    def __init__(self, wsgi_app: WSGIApplication, db: Database) -> None:
        self.wsgi_app = wsgi_app
        self.db = db

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        token = self._token_of_plain_get(environ)
        call = self._plain_call(environ) if token else None
        if call is None or token is None:
            return self.wsgi_app(environ, start_response)
        request_id = environ.get(REQUEST_ID_KEY, "-")
        actor, _why = actor_for_token(self.db, token, environ.get("REMOTE_ADDR"), request_id)
        if actor is None:
            return self.wsgi_app(environ, start_response)  # Flask refuses it, and records that
        return self._answer(call, actor, request_id)(environ, start_response)

    @staticmethod
    def _token_of_plain_get(environ: WSGIEnvironment) -> str | None:
        if environ.get("REQUEST_METHOD") != "GET" or "HTTP_COOKIE" in environ:
            return None
        return bearer_token(environ.get("HTTP_AUTHORIZATION", ""))

    def _plain_call(self, environ: WSGIEnvironment) -> Call | None:
        path = environ.get("PATH_INFO", "")
        if path == "/patients":
            query = _plain_listing_query(environ)
            if query is not None:
                environ[metrics.ROUTE_KEY] = "/patients"
                return lambda actor: json_response(service.list_patients(self.db, actor, query))
            return None
        match = PATIENT_PATH.fullmatch(path)
        if match is None or environ.get("QUERY_STRING") or int(match.group(1)) > MAX_PATIENT_ID:
            return None
        patient_id = int(match.group(1))
        environ[metrics.ROUTE_KEY] = "/patients/<int:patient_id>"
        return lambda actor: patient_response(service.get_patient(self.db, actor, patient_id))

    @staticmethod
    def _answer(call: Call, actor: Actor, request_id: str) -> Response:
        try:
            return call(actor)
        except ServiceError as exc:
            return service_problem(exc)
        except Exception as exc:  # answered as Flask's handler for the unexpected answers it
            return unexpected_problem(exc, request_id)


def _plain_listing_query(environ: WSGIEnvironment) -> PatientQuery | None:
    """The listing's query as the Flask route would validate it, or None for any form whose
    answer is a refusal (Flask gives those, worded as for every other route)."""
    # Flask's own parsing of the query string; the request is left as Flask will find it.
    args = Request(environ, populate_request=False, shallow=True).args
    if repeated_parameters(args):
        return None
    try:
        return PatientQuery.model_validate(args.to_dict())
    except ValidationError:
        return None
