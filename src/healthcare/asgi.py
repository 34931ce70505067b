"""The production server's entry point, ``healthcare.asgi:app``: the Flask app behind the
adapter that reads each request whole before a thread runs it (``healthcare.whole_requests``)."""

from healthcare import create_app
from healthcare.config import Settings
from healthcare.whole_requests import LargeUpload, WholeRequests

IMPORT_UPLOAD_SECONDS = 300  # 64 MiB over a slow clinic line

flask_app = create_app()
settings: Settings = flask_app.extensions["healthcare.settings"]
database = flask_app.extensions["healthcare.db"]
checkpoints = flask_app.extensions["healthcare.checkpoints"]
# Each server worker checkpoints the audit chain's head outside the database, and at its exit.
checkpoints.start()


def _shut_down() -> None:
    """Write the pending read events, then checkpoint the head they moved to."""
    database.dispose()
    checkpoints.stop()


app = WholeRequests(
    flask_app,
    body_limit=settings.max_body_bytes,
    deadline=settings.read_timeout_seconds,
    threads=settings.blocking_threads,
    on_shutdown=_shut_down,
    large_uploads={
        "/ui/admin/import": LargeUpload(settings.max_import_bytes, IMPORT_UPLOAD_SECONDS),
    },
    threaded_reads=("/ui/admin/export.",),  # every patient, audited a batch at a time
    reads_must_wait=database.pending_audit.flooded,
)
