"""Peer (c): FastAPI + pydantic + a psycopg 3 ``AsyncConnectionPool`` (min 4, max 16) on
PostgreSQL with ``synchronous_commit=on``; served by granian's ASGI interface, 2 workers.
Reads the ``peer_patients`` table (a copy of ours). No authentication, no audit.

    PEER_POSTGRES=postgresql://... granian --interface asgi --workers 2 \
        bench.peer_fastapi_pg:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

COLUMNS = "id, name, age, disease"
pool = AsyncConnectionPool(
    os.environ["PEER_POSTGRES"], min_size=4, max_size=16, open=False,
    kwargs={"autocommit": True, "row_factory": dict_row,
            "options": "-c synchronous_commit=on"},
)  # fmt: skip


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await pool.open()
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


class PatientIn(BaseModel):
    name: str
    age: int
    disease: str | None = None


class Patient(PatientIn):
    id: int


class Page(BaseModel):
    items: list[Patient]


@app.get("/patients/{patient_id}")
async def read(patient_id: int) -> Patient:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            f"SELECT {COLUMNS} FROM peer_patients WHERE id = %s", (patient_id,)
        )
        row = await cursor.fetchone()
    if row is None:
        raise HTTPException(404)
    return Patient(**row)


@app.get("/patients")
async def index(limit: int = 50, offset: int = 0, q: str | None = None) -> Page:
    async with pool.connection() as conn:
        if q:
            cursor = await conn.execute(
                f"SELECT {COLUMNS} FROM peer_patients WHERE lower(name) LIKE %s "
                "ORDER BY lower(name) LIMIT %s OFFSET %s",
                (q.lower() + "%", limit, offset),
            )
        else:
            cursor = await conn.execute(
                f"SELECT {COLUMNS} FROM peer_patients ORDER BY id LIMIT %s OFFSET %s",
                (limit, offset),
            )
        rows = await cursor.fetchall()
    return Page(items=[Patient(**row) for row in rows])


@app.post("/patients", status_code=201)
async def create(patient: PatientIn) -> Patient:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO peer_patients (name, age, disease) VALUES (%s, %s, %s) RETURNING id",
            (patient.name, patient.age, patient.disease),
        )
        row = await cursor.fetchone()
    return Patient(id=row["id"], **patient.model_dump())
