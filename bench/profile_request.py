"""Where a request's time goes, in-process: the full path a server worker runs for
``GET /patients/{id}`` with a bearer token (adapter environ, middleware, Flask, authentication,
the read, its audit event), with no network and no server. Prints CPU µs per request for the
whole path and for Flask with an empty view, then cProfile's top functions.

    .venv/bin/python bench/profile_request.py [--requests 20000] [--top 30]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from healthcare import create_app
from healthcare.audit.pipeline import open_database
from healthcare.auth.access import Actor, Role
from healthcare.auth.tokens import create_token
from healthcare.auth.users import create_user
from healthcare.config import load_settings
from healthcare.db import migrate
from healthcare.patients.seed import seed
from healthcare.whole_requests import run_wsgi, wsgi_environ

SECRET = secrets.token_urlsafe(48)


def prepared_app(data_dir: Path, rows: int) -> tuple[Any, str]:
    url = f"sqlite:///{data_dir / 'h.db'}"
    db = open_database(url)
    migrate.upgrade(db.engine)
    seed(db.engine, rows, random_seed=1)
    operator = Actor.operator()
    create_user(db, operator, "profiler", Role.CLINICIAN, "copper lantern meadow 44")
    token = create_token(db, operator, "profiler", "profile")["token"]
    db.dispose()
    settings = load_settings(secret_key=SECRET, database_url=url, data_dir=data_dir)
    return create_app(settings), token


def scope_for(path: str, token: str) -> dict[str, Any]:
    return {
        "type": "http", "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "root_path": "", "query_string": b"",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 9000),
    }  # fmt: skip


def per_request_us(call: Callable[[int], Any], count: int) -> float:
    started = time.process_time()  # CPU time: the machine may be busy with others
    for i in range(count):
        call(i)
    return (time.process_time() - started) / count * 1e6


def empty_flask() -> Flask:
    app = Flask("empty")
    app.get("/patients/<int:patient_id>")(lambda patient_id: {"id": patient_id})
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("HEALTHCARE_LOG_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory() as folder:
        app, token = prepared_app(Path(folder), args.rows)
        empty = empty_flask()

        def ours(i: int) -> Any:
            path = f"/patients/{i % args.rows + 1}"
            answer = run_wsgi(app, wsgi_environ(scope_for(path, token), b""))
            assert answer.status == 200, answer

        def bare(i: int) -> Any:
            return run_wsgi(empty, wsgi_environ(scope_for(f"/patients/{i}", token), b""))

        ours(0)
        print(f"ours, GET by id, full path: {per_request_us(ours, args.requests):7.1f} µs/request")
        print(f"plain Flask, empty view:   {per_request_us(bare, args.requests):7.1f} µs/request")
        profile = cProfile.Profile()
        profile.enable()
        per_request_us(ours, args.requests)
        profile.disable()
        stats = pstats.Stats(profile).strip_dirs().sort_stats("cumulative")
        stats.print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)
        app.extensions["healthcare.db"].dispose()


if __name__ == "__main__":
    main()
