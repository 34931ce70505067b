"""A patient-records service a clinic can run itself."""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_openapi3 import Info, OpenAPI

from healthcare import api, observability
from healthcare.api.problems import Problem, validation_problem
from healthcare.config import Settings, load_settings
from healthcare.db.database import Database

__version__ = "0.1.0"


class LazyCookieSessionInterface(SecureCookieSessionInterface):
    """Builds the cookie signer only for requests that carry a session cookie: API calls
    carry none, and making the signer was a measurable share of every API request."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" not in request.environ or not request.cookies.get(
            self.get_cookie_name(app)
        ):
            return self.session_class()
        return super().open_session(app, request)


def create_app(settings: Settings | None = None) -> OpenAPI:
    """The application factory: settings from the environment unless given."""
    settings = settings or load_settings()
    observability.configure_logging(settings.log_level, to_stdout=settings.env != "testing")
    app = OpenAPI(
        __name__,
        info=Info(
            title="Healthcare patient records",
            version=__version__,
            description="Patient records for a clinic: JSON API over SQLite or PostgreSQL.",
        ),
        doc_ui=False,
        security_schemes={},
        validation_error_status="422",
        validation_error_model=Problem,
        validation_error_callback=validation_problem,
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        TESTING=settings.env == "testing",
    )
    app.extensions["healthcare.settings"] = settings
    app.extensions["healthcare.db"] = Database.from_url(
        settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    app.session_interface = LazyCookieSessionInterface()
    observability.init_app(app)
    api.init_app(app)
    return app
