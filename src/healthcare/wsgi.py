"""The WSGI entry point for the production server: ``healthcare.wsgi:app``."""

from healthcare import create_app

app = create_app()
