"""Patient identity at scale: the migration, structured search, and duplicate detection.

1. Builds a database at revision 0003 with ``--rows`` synthetic patients (1,000,000 by
   default), upgrades it to the identity schema and prints how long the migration took.
2. Gives every patient an identifier, then times uncached searches (no page cache: every
   query runs its SQL) by family name, family prefix, family + given, date of birth, birth
   date range + family, phone, identifier and record number: p50 and p95 per kind.
3. Times the duplicate check (blocking query + scoring) for people who are and are not on
   record: p50 and p95.
4. Builds a labelled set (``--people`` patients, ``--duplicates`` of them entered a second
   time with typos, transposed names, nicknames, missing or mistyped birth dates, changed
   phones), checks every record against all the others and prints precision and recall of
   the warning over pairs.

Runs on SQLite, and on PostgreSQL too with ``--postgres URL`` (a server URL; a database is
made for the run). Nothing asserts: it prints figures.

    .venv/bin/python bench/identity_bench.py [--rows 1000000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).parent))
from healthcare.audit.pipeline import open_database
from healthcare.db import migrate
from healthcare.db.database import Database
from healthcare.db.engine import create_db_engine, write_transaction
from healthcare.db.models import patients
from healthcare.patients import queries, service
from healthcare.patients.schemas import PatientQuery
from healthcare.patients.seed import insert_with_identity
from identity_data import People, Person, insert_people, stored_row

OLD_COLUMNS = (
    "name", "name_search", "age", "disease", "gender", "date_of_birth", "phone", "email",
    "notes", "created_at", "updated_at", "version",
)  # fmt: skip
BATCH = 20_000
SYSTEM = "urn:bench:national-number"


def _people(count: int, seed: int) -> Iterator[Person]:
    people = People(seed)
    for _ in range(count):
        yield people.person()


def _fresh_url(kind: str, folder: Path, postgres: str | None) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / f'identity-{uuid.uuid4().hex[:6]}.db'}"
    name = f"identity_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres or "", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(postgres or "").set(database=name).render_as_string(hide_password=False)


def _old_rows(count: int) -> Iterator[list[dict[str, Any]]]:
    batch = []
    for person in _people(count, seed=7):
        row = stored_row(person)
        batch.append({name: row[name] for name in OLD_COLUMNS})
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def time_migration(engine: Engine, rows: int) -> None:
    migrate.upgrade(engine, "0003")
    old = sa.table("patients", *(sa.column(name) for name in OLD_COLUMNS))
    started = time.perf_counter()
    for batch in _old_rows(rows):
        with write_transaction(engine) as conn:
            conn.execute(sa.insert(old), batch)
    print(f"  inserted {rows:,} patients at 0003 in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    migrate.upgrade(engine)
    print(f"  migration 0003 -> 0006 over {rows:,} patients: {time.perf_counter() - started:.0f} s")
    _identifiers_and_statistics(engine)


def populate_at_head(engine: Engine, rows: int) -> None:
    """The same patients, inserted at the current schema (no migration timed): faster."""
    migrate.upgrade(engine)
    started = time.perf_counter()
    insert_people(engine, rows, seed=7)
    print(f"  inserted {rows:,} patients in {time.perf_counter() - started:.0f} s")
    _identifiers_and_statistics(engine)


def _identifiers_and_statistics(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO patient_identifiers (patient_id, system, value) "
                f"SELECT id, '{SYSTEM}', CAST(id + 900000000 AS VARCHAR(20)) FROM patients"
            )
        )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))


def _sample(engine: Engine, size: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        top = conn.execute(sa.text("SELECT max(id) FROM patients")).scalar() or 1
        ids = random.sample(range(1, top + 1), min(size, top))
        columns = ("id", "mrn", "family_search", "given_search", "date_of_birth", "phone")
        found = conn.execute(
            sa.select(*(patients.c[name] for name in columns)).where(patients.c.id.in_(ids))
        ).mappings()
        return [dict(row) for row in found]


def _search_kinds(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    born = row["date_of_birth"]
    kinds = {
        "family": {"family": row["family_search"]},
        "family prefix (3)": {"family": row["family_search"][:3]},
        "family + given": {"family": row["family_search"], "given": row["given_search"]},
        "identifier": {"identifier": f"{SYSTEM}|{row['id'] + 900000000}"},
        "mrn": {"mrn": row["mrn"]},
    }
    if born:
        kinds["date of birth"] = {"date_of_birth": born.isoformat()}
        kinds["born in 30 days + family"] = {
            "born_from": (born - timedelta(days=15)).isoformat(),
            "born_to": (born + timedelta(days=15)).isoformat(),
            "family": row["family_search"],
        }
    if row["phone"]:
        kinds["phone"] = {"phone": row["phone"]}
    return kinds


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1] if len(ordered) >= 20 else ordered[-1]
    return f"p50 {statistics.median(ordered):6.2f} ms   p95 {p95:6.2f} ms   (n={len(ordered)})"


def time_searches(db: Database, queries_each: int) -> None:
    timings: dict[str, list[float]] = {}
    for row in _sample(db.engine, queries_each):
        for kind, params in _search_kinds(row).items():
            query = PatientQuery(**params)
            listing, bound = queries.patient_listing(query, db.dialect)
            started = time.perf_counter()
            db.read((listing.page, bound), (listing.total, bound))
            timings.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
    for kind, samples in timings.items():
        print(f"  {kind:28} {_percentiles(samples)}")
    overall = [t for samples in timings.values() for t in samples]
    print(f"  {'all kinds':28} {_percentiles(overall)}")


def _check(engine: Engine, person: Person, exclude: int | None = None) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return service.likely_duplicates(conn, stored_row(person), exclude)


def time_duplicate_checks(engine: Engine, checks: int) -> None:
    people = People(seed=99)
    on_record = [
        Person(r["given_search"] or "", r["family_search"], r["date_of_birth"], r["phone"],
               None, "unknown")
        for r in _sample(engine, checks // 2)
    ]  # fmt: skip
    newcomers = [people.person() for _ in range(checks // 2)]
    for label, group in (("already on record (a variant)", on_record), ("new people", newcomers)):
        samples = []
        for person in group:
            variant, _kind = people.variant(person)
            started = time.perf_counter()
            _check(engine, variant)
            samples.append((time.perf_counter() - started) * 1000)
        print(f"  {label:28} {_percentiles(samples)}")


def precision_and_recall(engine: Engine, count: int, duplicates: int) -> None:
    migrate.upgrade(engine)
    people = People(seed=3)
    originals = [people.person() for _ in range(count)]
    twins = random.Random(5).sample(range(count), duplicates)
    variants = [people.variant(originals[i]) for i in twins]
    everyone = originals + [v for v, _kind in variants]
    with write_transaction(engine) as conn:
        insert_with_identity(conn, [stored_row(p) for p in everyone], "MRN")
    truth = {frozenset((i + 1, count + n + 1)) for n, i in enumerate(twins)}
    found: set[frozenset[int]] = set()
    started = time.perf_counter()
    for index, person in enumerate(everyone):
        pid = index + 1
        found |= {frozenset((pid, c["id"])) for c in _check(engine, person, exclude=pid)}
    seconds = time.perf_counter() - started
    hits = found & truth
    print(f"  {len(everyone):,} records checked against all others in {seconds:.0f} s")
    print(f"  pairs flagged {len(found):,}, true pairs {len(truth):,}, found {len(hits):,}")
    print(f"  precision {len(hits) / max(len(found), 1):.3f}   recall {len(hits) / len(truth):.3f}")
    kinds: dict[str, list[bool]] = {}
    for n, (i, (_variant, kind)) in enumerate(zip(twins, variants, strict=True)):
        kinds.setdefault(kind, []).append(frozenset((i + 1, count + n + 1)) in found)
    for kind, hit in sorted(kinds.items()):
        print(f"    recall for {kind:18} {sum(hit) / len(hit):.3f}  (n={len(hit)})")


def _run(label: str, step: Callable[[], None]) -> None:
    print(label, flush=True)
    step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="0 to skip")
    parser.add_argument("--queries", type=int, default=300, help="sampled patients per kind")
    parser.add_argument("--checks", type=int, default=400, help="duplicate checks timed")
    parser.add_argument("--people", type=int, default=100_000, help="labelled set, 0 to skip")
    parser.add_argument("--duplicates", type=int, default=2_000)
    parser.add_argument("--postgres", help="a PostgreSQL server URL: run there as well")
    parser.add_argument("--at-head", action="store_true", help="insert at the current schema "
                        "instead of timing the migration")  # fmt: skip
    parser.add_argument("--database", action="append", default=[],
                        help="time searches on this database (repeatable)")  # fmt: skip
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.postgres else ["sqlite"]
    if not args.rows or args.database:
        kinds = []
    for url in args.database:
        db = open_database(url)
        try:
            print(f"\n== {db.dialect}, {url} ==", flush=True)
            _run("uncached searches:", lambda db=db: time_searches(db, args.queries))
            _run("duplicate check:", lambda db=db: time_duplicate_checks(db.engine, args.checks))
        finally:
            db.dispose()
    with tempfile.TemporaryDirectory(prefix="identity-bench-") as folder:
        for kind in kinds:
            db = open_database(_fresh_url(kind, Path(folder), args.postgres))
            try:
                print(f"\n== {kind}, {args.rows:,} patients ==", flush=True)
                (populate_at_head if args.at_head else time_migration)(db.engine, args.rows)
                _run("uncached searches:", lambda db=db: time_searches(db, args.queries))
                _run(
                    "duplicate check:", lambda db=db: time_duplicate_checks(db.engine, args.checks)
                )
            finally:
                db.dispose()
        if args.people:
            engine = create_db_engine(_fresh_url("sqlite", Path(folder), None))
            label = f"\n== duplicates: {args.people:,} people + {args.duplicates:,} duplicates =="
            _run(label, lambda: precision_and_recall(engine, args.people, args.duplicates))
            engine.dispose()


if __name__ == "__main__":
    main()
