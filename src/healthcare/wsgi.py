"""The WSGI entry point for the production server: ``healthcare.wsgi:app``."""

from healthcare import create_app

app = create_app()
# Each server worker checkpoints the audit chain's head outside the database, and at its exit.
app.extensions["healthcare.checkpoints"].start()
