"""Peer (b): FastAPI + pydantic with ``async def`` handlers and the same sqlite3 access as peer
(a) (WAL, ``synchronous=FULL``, one connection per thread: here the worker's event loop
thread); served by granian's ASGI interface, 2 workers. No authentication, no audit.

    granian --interface asgi --workers 2 bench.peer_fastapi_sqlite:app
"""

from __future__ import annotations

import os
import sqlite3
import threading

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

DATABASE = os.environ["PEER_DATABASE"]
COLUMNS = "id, name, age, disease"
app = FastAPI()
local = threading.local()


class PatientIn(BaseModel):
    name: str
    age: int
    disease: str | None = None


class Patient(PatientIn):
    id: int


class Page(BaseModel):
    items: list[Patient]


def db() -> sqlite3.Connection:
    if not hasattr(local, "conn"):
        conn = sqlite3.connect(DATABASE, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.row_factory = sqlite3.Row
        local.conn = conn
    return local.conn


@app.get("/patients/{patient_id}")
async def read(patient_id: int) -> Patient:
    row = db().execute(f"SELECT {COLUMNS} FROM patients WHERE id = ?", (patient_id,)).fetchone()
    if row is None:
        raise HTTPException(404)
    return Patient(**dict(row))


@app.get("/patients")
async def index(limit: int = 50, offset: int = 0, q: str | None = None) -> Page:
    if q:
        rows = db().execute(
            f"SELECT {COLUMNS} FROM patients WHERE name LIKE ? ORDER BY name LIMIT ? OFFSET ?",
            (q + "%", limit, offset),
        )
    else:
        rows = db().execute(
            f"SELECT {COLUMNS} FROM patients ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
        )
    return Page(items=[Patient(**dict(row)) for row in rows])


@app.post("/patients", status_code=201)
async def create(patient: PatientIn) -> Patient:
    cursor = db().execute(
        "INSERT INTO patients (name, age, disease) VALUES (?, ?, ?)",
        (patient.name, patient.age, patient.disease),
    )
    return Patient(id=cursor.lastrowid, **patient.model_dump())
