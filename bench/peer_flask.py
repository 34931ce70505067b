"""Peer (a): tuned plain Flask. Flask + stdlib sqlite3, WAL, ``synchronous=FULL`` (a 201 means
on disk, as ours promises), one connection per thread; served by granian, 2 workers x 4
blocking threads. No authentication and no audit: the yardstick of a plain app.

    granian --interface wsgi --workers 2 --blocking-threads 4 bench.peer_flask:app
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from flask import Flask, jsonify, request

DATABASE = os.environ["PEER_DATABASE"]
COLUMNS = "id, name, age, disease"
app = Flask(__name__)
local = threading.local()


def db() -> sqlite3.Connection:
    if not hasattr(local, "conn"):
        conn = sqlite3.connect(DATABASE, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.row_factory = sqlite3.Row
        local.conn = conn
    return local.conn


@app.get("/patients/<int:patient_id>")
def read(patient_id: int) -> Any:
    row = db().execute(f"SELECT {COLUMNS} FROM patients WHERE id = ?", (patient_id,)).fetchone()
    return (jsonify(dict(row)), 200) if row else ("", 404)


@app.get("/patients")
def index() -> Any:
    limit = int(request.args.get("limit", 50))
    offset = int(request.args.get("offset", 0))
    if q := request.args.get("q"):
        rows = db().execute(
            f"SELECT {COLUMNS} FROM patients WHERE name LIKE ? ORDER BY name LIMIT ? OFFSET ?",
            (q + "%", limit, offset),
        )
    else:
        rows = db().execute(
            f"SELECT {COLUMNS} FROM patients ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
        )
    return jsonify({"items": [dict(row) for row in rows]})


@app.post("/patients")
def create() -> Any:
    body = request.get_json()
    cursor = db().execute(
        "INSERT INTO patients (name, age, disease) VALUES (?, ?, ?)",
        (body["name"], body["age"], body.get("disease")),
    )
    return jsonify({"id": cursor.lastrowid, **body}), 201
