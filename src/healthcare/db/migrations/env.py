"""Alembic environment: runs on the connection handed in by healthcare.db.migrate."""

from alembic import context

from healthcare.db.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
