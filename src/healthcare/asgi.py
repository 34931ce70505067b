"""The production server's entry point, ``healthcare.asgi:app``: the Flask app behind the
adapter that reads each request whole before a thread runs it (``healthcare.whole_requests``)."""

from healthcare import create_app
from healthcare.config import Settings
from healthcare.whole_requests import WholeRequests

flask_app = create_app()
settings: Settings = flask_app.extensions["healthcare.settings"]


app = WholeRequests(
    flask_app,
    body_limit=settings.max_body_bytes,
    deadline=settings.read_timeout_seconds,
    threads=settings.blocking_threads,
    on_shutdown=flask_app.extensions["healthcare.db"].dispose,
)
