"""Assembling the database the app and the CLI use."""

from __future__ import annotations

from pathlib import Path

from healthcare.audit.pipeline import open_configured_database
from healthcare.config import load_settings


def test_the_pool_holds_a_connection_for_each_request_thread_the_event_loop_and_the_writer(
    tmp_path: Path,
) -> None:
    """A worker's request threads, its event loop and its group-commit writer may each hold a
    connection at once: a smaller pool made the loop or the writer wait for one."""
    settings = load_settings(
        secret_key="pool-" + "x" * 40,
        database_url=f"sqlite:///{tmp_path / 'pool.db'}",
        data_dir=tmp_path,
        blocking_threads=5,
    )
    db = open_configured_database(settings)
    try:
        assert db.engine.pool.size() == 7
    finally:
        db.dispose()
