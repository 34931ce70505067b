"""FHIR search at scale, and bulk import and export.

1. Builds a SQLite database with ``--rows`` synthetic patients (1,000,000 by default) and
   times FHIR searches through the whole FHIR front end in process (routing, bearer token,
   search parameters, the listing, the searchset Bundle): ``name``, ``family``,
   ``family`` + ``given`` and ``family`` + ``birthdate``, each with terms drawn from the
   data, with the page cache turned off so that every search runs its SQL. Prints p50 and
   p95 per kind.
2. Writes ``--import-rows`` patients (100,000 by default) as CSV, imports them into an empty
   database (``healthcare patients import``'s use case) and prints the time; exports them,
   imports the export into another empty database, and compares every writable field of
   every patient (the round trip) in CSV and in FHIR NDJSON.

Nothing asserts; it prints figures.

    .venv/bin/python bench/fhir_bench.py [--rows 1000000] [--import-rows 100000]
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.conftest import TEST_SECRET, add_token, add_user

from healthcare import create_app
from healthcare.audit.pipeline import open_database
from healthcare.auth.access import Actor
from healthcare.config import Settings
from healthcare.db import migrate
from healthcare.db.database import Database
from healthcare.db.engine import create_db_engine
from healthcare.db.models import patients
from healthcare.exchange import export_lines, read_patients
from healthcare.patients.bulk import import_patients
from healthcare.patients.service import FIELDS, WRITABLE, to_api
from identity_data import People, Person, insert_people


def _fresh_database(folder: Path) -> str:
    url = f"sqlite:///{folder / f'fhir-{uuid.uuid4().hex[:6]}.db'}"
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def _people(count: int, seed: int) -> Iterator[Person]:
    people = People(seed)
    for _ in range(count):
        yield people.person()


def seed(url: str, rows: int) -> None:
    engine = create_db_engine(url)
    started = time.perf_counter()
    insert_people(engine, rows, seed=11)
    engine.dispose()
    print(f"  seeded {rows:,} patients in {time.perf_counter() - started:.0f} s")


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1] if len(ordered) >= 20 else ordered[-1]
    return f"p50 {statistics.median(ordered):6.2f} ms   p95 {p95:6.2f} ms   (n={len(ordered)})"


def _sample(db: Database, size: int) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        top = conn.execute(select(patients.c.id).order_by(patients.c.id.desc()).limit(1)).scalar()
        wanted = random.Random(5).sample(range(1, (top or 0) + 1), size)
        rows = conn.execute(
            select(patients.c.family_name, patients.c.given_names, patients.c.date_of_birth)
            .where(patients.c.id.in_(wanted))
        ).all()  # fmt: skip
    return [row._asdict() for row in rows]


def _search_kinds(row: dict[str, Any]) -> dict[str, str]:
    family, given, born = row["family_name"], row["given_names"] or "", row["date_of_birth"]
    kinds = {
        "name (word start)": f"name={family[:4]}",
        "family (exact)": f"family={family}",
        "family + given": f"family={family}&given={given[:3]}",
    }
    if born is not None:
        kinds["family + birthdate"] = f"family={family}&birthdate={born.isoformat()}"
    return kinds


def time_fhir_searches(url: str, folder: Path, searches_each: int) -> None:
    settings = Settings(env="testing", secret_key=TEST_SECRET, database_url=url, data_dir=folder)
    app = create_app(settings)
    db: Database = app.extensions["healthcare.db"]
    token = add_token(db.engine, add_user(db.engine, f"bench-{uuid.uuid4().hex[:6]}", "viewer"))
    db.pages.capacity = 0  # every search runs its SQL
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    timings: dict[str, list[float]] = {}
    for row in _sample(db, searches_each):
        for kind, query in _search_kinds(row).items():
            started = time.perf_counter()
            response = client.get(f"/fhir/Patient?{query}&_count=20", headers=headers)
            timings.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.get_data(as_text=True)
    for kind, samples in timings.items():
        print(f"  {kind:22} {_percentiles(samples)}")
    db.dispose()


def _csv_file(folder: Path, count: int) -> Path:
    path = folder / "import.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("family_name", "given_names", "date_of_birth", "age", "gender",
                         "phone", "email", "identifiers"))  # fmt: skip
        for number, person in enumerate(_people(count, seed=23)):
            writer.writerow((
                person.family, person.given, person.born.isoformat() if person.born else "",
                "" if person.born else "40", person.gender or "", person.phone or "",
                person.email or "", f"urn:bench:previous-mrn|{number}",
            ))  # fmt: skip
    return path


def _import(url: str, path: Path, fmt: str) -> float:
    db = open_database(url)
    started = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as lines:
        report = import_patients(db, Actor.operator(), read_patients(lines, fmt))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    db.dispose()
    if report.problems:
        print(f"  {len(report.problems)} problems, first: {report.problems[:3]}")
    return elapsed


def _export(url: str, path: Path, fmt: str) -> float:
    db = open_database(url)
    started = time.perf_counter()
    with path.open("w", encoding="utf-8", newline="") as out:
        for chunk in export_lines(db, Actor.operator(), fmt):  # type: ignore[arg-type]
            out.write(chunk)
    elapsed = time.perf_counter() - started
    db.dispose()
    return elapsed


def _writable(url: str) -> list[dict[str, Any]]:
    engine = create_db_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(*(patients.c[name] for name in FIELDS)).order_by(patients.c.id))
        found = [{k: v for k, v in to_api(tuple(row)).items() if k in WRITABLE} for row in rows]
    engine.dispose()
    return found


def import_and_round_trip(folder: Path, count: int) -> None:
    source = _fresh_database(folder)
    path = _csv_file(folder, count)
    print(
        f"  import {count:,} CSV rows into an empty database: {_import(source, path, 'csv'):.1f} s"
    )
    for fmt in ("csv", "ndjson"):
        exported = folder / f"export.{fmt}"
        took = _export(source, exported, fmt)
        target = _fresh_database(folder)
        back = _import(target, exported, fmt)
        same = _writable(source) == _writable(target)
        print(f"  {fmt:6}: export {took:.1f} s, import {back:.1f} s, round trip identical: {same}")


def _run(label: str, step: Callable[[], None]) -> None:
    print(label, flush=True)
    step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--searches", type=int, default=200, help="searches of each kind")
    parser.add_argument("--import-rows", type=int, default=100_000, help="0 to skip")
    parser.add_argument("--database", help="search this database (made before) instead of "
                        "seeding a new one: e.g. identity_bench.py's")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fhir-bench-") as tmp:
        folder = Path(tmp)
        if args.database:
            _run(f"FHIR search on {args.database} (in process):", lambda: time_fhir_searches(
                args.database, folder, args.searches
            ))  # fmt: skip
        else:
            url = _fresh_database(folder)
            _run(f"FHIR search at {args.rows:,} patients (SQLite, in process):", lambda: (
                seed(url, args.rows), time_fhir_searches(url, folder, args.searches)
            ))  # fmt: skip
        if args.import_rows:
            _run("Bulk import and export (SQLite):", lambda: import_and_round_trip(
                folder, args.import_rows
            ))  # fmt: skip


if __name__ == "__main__":
    main()
