"""Engine creation: one place that knows how SQLite and PostgreSQL connections are set up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

BEGIN_OPTION = "healthcare_begin"


SQLITE_BEGIN = {"write": "BEGIN IMMEDIATE"}
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
CONNECTIONS = 18  # a server worker's: its 16 request threads, its event loop, its writer
POOL_SLACK = 4  # connections beyond the expected holders, opened only if needed


def create_db_engine(
    database_url: str, *, busy_timeout_ms: int = 30_000, connections: int = CONNECTIONS
) -> Engine:
    """An engine whose error messages leave out statement parameters (patient values). Its
    pool keeps ``connections``: one for each thread of the process that may hold one at the
    same time (a server worker's request threads, its event loop, its writer)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(database_url, busy_timeout_ms, connections)
    return create_engine(
        database_url,
        # An API read runs on the server's event loop: a database that does not answer must
        # fail it in seconds, not after the system's TCP timeout.
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS},
        pool_pre_ping=True,
        pool_size=connections,
        max_overflow=POOL_SLACK,
        hide_parameters=True,
    )


def _create_sqlite_engine(database_url: str, busy_timeout_ms: int, connections: int) -> Engine:
    url = make_url(database_url)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        database_url,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        pool_size=connections,
        max_overflow=POOL_SLACK,
        hide_parameters=True,  # error messages (and so logs) never carry patient values
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that reads and then
        # writes can fail with "database is locked" without waiting on the busy timeout.
        # Reads need no BEGIN: each statement is its own snapshot.
        statement = SQLITE_BEGIN.get(conn.get_execution_options().get(BEGIN_OPTION))
        if statement:
            conn.exec_driver_sql(statement)

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the write lock from its first statement."""
    with engine.connect() as conn, writing(conn).begin():
        yield conn


def writing(conn: Connection) -> Connection:
    """``conn``, its transactions from now on writers (see ``write_transaction``)."""
    return conn.execution_options(**{BEGIN_OPTION: "write"})
