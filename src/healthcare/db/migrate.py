"""Apply and inspect migrations; safe when several processes start at once."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from healthcare.db.engine import write_transaction

MIGRATIONS = Path(__file__).with_name("migrations")
POSTGRES_MIGRATION_LOCK = 0x6865616C  # any constant shared by every process of the service


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; concurrent callers wait for each other."""
    config = _alembic_config()
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            lock = text("SELECT pg_advisory_xact_lock(:key)")
            conn.execute(lock, {"key": POSTGRES_MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
