"""A patient-records service a clinic can run itself."""

from __future__ import annotations

from datetime import timedelta

from flask_openapi3 import Info, OpenAPI

from healthcare import api, fhir, observability, ui
from healthcare.api.problems import Problem, validation_problem
from healthcare.audit.keys import keyed_audit
from healthcare.audit.pipeline import open_configured_database
from healthcare.auth import web
from healthcare.auth.login import LoginPolicy
from healthcare.auth.sessions import SessionPolicy
from healthcare.config import Settings, load_settings
from healthcare.proxies import TrustedProxies

__version__ = "0.1.0"
BEARER = {"bearer": {"type": "http", "scheme": "bearer", "description": "An API token."}}


def create_app(settings: Settings | None = None) -> OpenAPI:
    """The application factory: settings from the environment unless given."""
    settings = settings or load_settings()
    observability.configure_logging(settings.log_level, to_stdout=settings.env != "testing")
    app = OpenAPI(
        __name__,
        info=Info(
            title="Healthcare patient records",
            version=__version__,
            description="Patient records for a clinic: JSON API over SQLite or PostgreSQL. "
            "Every call needs a bearer token (`healthcare tokens create`) or a signed-in session.",
        ),
        doc_ui=False,
        security_schemes=BEARER,
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
    app.extensions["healthcare.db"] = open_configured_database(settings)
    app.extensions["healthcare.checkpoints"] = keyed_audit(
        app.extensions["healthcare.db"].engine, settings
    )
    app.extensions["healthcare.login_policy"] = LoginPolicy(
        failures_per_account=settings.login_max_failures,
        failures_per_client=settings.login_max_failures_per_client,
        window=timedelta(minutes=settings.login_window_minutes),
    )
    web.init_app(
        app,
        SessionPolicy(
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_max_hours),
        ),
    )
    if settings.proxy_addresses:
        hops = max(settings.trusted_proxies, 1)
        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.proxy_addresses, hops)  # type: ignore[method-assign]
    observability.init_app(app)
    api.init_app(app)
    fhir.init_app(app)
    ui.init_app(app)
    return app
