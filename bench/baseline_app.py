"""The seed design done plainly: Flask and stdlib sqlite3, the SELECT or INSERT and nothing else.

Served by gunicorn with 2 sync workers, it is the yardstick the benchmark divides by."""

from __future__ import annotations

import os
import sqlite3

from flask import Flask, g, jsonify, request

DATABASE = os.environ["BASELINE_DATABASE"]
COLUMNS = "id, name, age, disease"

app = Flask(__name__)


def db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = sqlite3.connect(DATABASE)
        g.db.row_factory = sqlite3.Row
    return g.db


@app.teardown_appcontext
def close_db(_exc: BaseException | None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


@app.get("/patients/<int:patient_id>")
def read(patient_id: int):
    row = db().execute(f"SELECT {COLUMNS} FROM patients WHERE id = ?", (patient_id,)).fetchone()
    return (jsonify(dict(row)), 200) if row else ("", 404)


@app.get("/patients")
def index():
    limit = int(request.args.get("limit", 50))
    offset = int(request.args.get("offset", 0))
    rows = db().execute(
        f"SELECT {COLUMNS} FROM patients ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
    )
    return jsonify([dict(row) for row in rows])


@app.post("/patients")
def create():
    body = request.get_json()
    conn = db()
    cursor = conn.execute(
        "INSERT INTO patients (name, age, disease) VALUES (?, ?, ?)",
        (body["name"], body["age"], body.get("disease")),
    )
    conn.commit()
    return jsonify({"id": cursor.lastrowid, **body}), 201
