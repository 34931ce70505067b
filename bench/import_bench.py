"""Bulk import at 100,000 rows (issue 16): ``healthcare patients import``'s use case, timed.

Writes a realistic CSV of ``--rows`` people (``identity_data.People``: a long tail of family
names, nicknames, 85% with a phone, 50% with an email, each with a previous record number as
identifier; 2% are variants of people already on record, as a real second source has, and one
row in a thousand has a phone that is not one). Then, per database engine, a dry run and the
real import (``--skip-invalid``: the file has problems on purpose) into an empty database and
into one that already holds ``--existing`` patients of the same population. Prints seconds,
rows/s, what the import reported, and the load average beside each figure (the machine is
shared; compare figures of one run with each other).

``--profile FILE`` runs one step (``--profile-step``) under cProfile instead, writes the
stats to FILE and prints the top functions. Nothing asserts; it prints figures.

    .venv/bin/python bench/import_bench.py [--rows 100000] [--existing 100000]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:PORT/postgres]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import os
import pstats
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from healthcare.audit.pipeline import open_database
from healthcare.auth.access import Actor
from healthcare.db import migrate
from healthcare.db.engine import create_db_engine
from healthcare.exchange import read_patients
from healthcare.patients.bulk import ImportReport, import_patients
from identity_data import People, Person, insert_people

SEED = 7
VARIANT_SHARE = 0.02
INVALID_EVERY = 1_000
COLUMNS = ("family_name", "given_names", "date_of_birth", "age", "gender", "phone", "email",
           "city", "postal_code", "identifiers", "disease")  # fmt: skip


def population(existing: int, rows: int) -> tuple[list[Person], list[Person]]:
    """People on record (those ``insert_people`` stores with SEED), and the people of the
    file: new people of the same population, and a few variants of people on record (the
    same person entered again elsewhere)."""
    people = People(SEED)
    on_record = [people.person() for _ in range(existing)]
    in_file = []
    for _ in range(rows):
        if on_record and people.rng.random() < VARIANT_SHARE:
            in_file.append(people.variant(people.rng.choice(on_record))[0])
        else:
            in_file.append(people.person())
    return on_record, in_file


def _csv_row(number: int, person: Person, rng: random.Random) -> tuple[str, ...]:
    born = person.born.isoformat() if person.born else ""
    phone = "not a phone" if number % INVALID_EVERY == 0 else person.phone or ""
    return (
        person.family, person.given, born, "" if born else str(rng.randrange(90)), person.gender,
        phone, person.email or "", rng.choice(("Leeds", "York", "Hull", "")),
        f"LS{rng.randrange(1, 30)} {rng.randrange(10)}AB",
        f"urn:previous-system:mrn|P{number:07d}", rng.choice(("Asthma", "Migraine", "", "")),
    )  # fmt: skip


def write_csv(path: Path, people: list[Person]) -> None:
    rng = random.Random(3)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for number, person in enumerate(people, start=1):
            writer.writerow(_csv_row(number, person, rng))


@contextmanager
def fresh_database(engine_name: str, folder: Path, postgres_url: str | None) -> Iterator[str]:
    """The URL of a new, migrated, empty database (dropped afterwards on PostgreSQL)."""
    name = f"import_bench_{uuid.uuid4().hex[:8]}"
    if engine_name == "sqlite":
        url = f"sqlite:///{folder / f'{name}.db'}"
    else:
        assert postgres_url is not None
        _on_server(postgres_url, f'CREATE DATABASE "{name}"')
        url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        if engine_name == "postgresql" and postgres_url is not None:
            _on_server(postgres_url, f'DROP DATABASE "{name}"')


def _on_server(server_url: str, statement: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(statement))
    admin.dispose()


def seed(url: str, count: int) -> None:
    """The people on record (``population``'s), stored as the service would have stored them."""
    engine = create_db_engine(url)
    started = time.perf_counter()
    insert_people(engine, count, SEED)
    if engine.dialect.name == "postgresql":  # statistics, as autovacuum would have made them
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    print(f"  seeded {count:,} patients in {time.perf_counter() - started:.0f} s")


def run_import(url: str, path: Path, *, dry_run: bool) -> tuple[float, ImportReport]:
    db = open_database(url)
    started = time.perf_counter()
    with path.open(encoding="utf-8-sig", newline="") as lines:
        report = import_patients(
            db, Actor.operator(), read_patients(lines, "csv"), dry_run=dry_run, skip_invalid=True
        )
    elapsed = time.perf_counter() - started
    db.dispose()
    return elapsed, report


def _load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def timed_steps(label: str, url: str, path: Path, problems: Path | None) -> None:
    """A dry run, then the import: seconds, rows/s and what each reported."""
    for dry_run in (True, False):
        elapsed, report = run_import(url, path, dry_run=dry_run)
        if problems is not None and dry_run:
            _write_problems(problems / f"{label.replace(', ', '-').replace(' ', '_')}.txt", report)
        done = (
            f"would create {report.to_create:,}" if dry_run else f"created {len(report.created):,}"
        )
        step = "dry run" if dry_run else "import "
        print(
            f"  {label:28} {step} {report.rows:,} rows {elapsed:7.1f} s "
            f"{report.rows / elapsed:8,.0f} rows/s  {len(report.problems):,} problems, {done}  "
            f"({_load()})",
            flush=True,
        )


def _write_problems(path: Path, report: ImportReport) -> None:
    path.write_text("".join(f"row {number}: {message}\n" for number, message in report.problems))


def profiled(url: str, path: Path, dry_run: bool, out: str) -> None:
    profile = cProfile.Profile()
    profile.enable()
    elapsed, report = run_import(url, path, dry_run=dry_run)
    profile.disable()
    profile.dump_stats(out)
    print(f"  profiled: {report.rows:,} rows in {elapsed:.1f} s ({_load()}); stats in {out}")
    stats = pstats.Stats(out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--existing", type=int, default=100_000, help="0: empty database only")
    parser.add_argument("--postgres-url", help="a server URL; a database is made and dropped")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument(
        "--problems",
        metavar="DIR",
        type=Path,
        help="write each dry run's problems to a file in DIR (to compare)",
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile one step, stats to FILE")
    parser.add_argument(
        "--profile-step", default="existing-import",
        choices=["empty-dry", "empty-import", "existing-dry", "existing-import"],
    )  # fmt: skip
    return parser.parse_args()


def _scenarios(args: argparse.Namespace, on_record: list[Person]) -> list[tuple[str, list]]:
    """(engine, people on record) of each run: an empty database, then a populated one; the
    one step's database with --profile."""
    engines = ([] if args.no_sqlite else ["sqlite"]) + (["postgresql"] if args.postgres_url else [])
    populations = [[]] if args.existing == 0 else [[], on_record]
    if args.profile:
        populations = [on_record if args.profile_step.startswith("existing") else []]
    return [(engine, people) for engine in engines for people in populations]


def main() -> None:
    args = _arguments()
    on_record, in_file = population(args.existing, args.rows)
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        folder = Path(tmp)
        path = folder / "patients.csv"
        write_csv(path, in_file)
        print(f"{args.rows:,} rows, {path.stat().st_size / 2**20:.1f} MiB ({_load()})")
        for engine_name, existing in _scenarios(args, on_record):
            label = f"{engine_name}, {len(existing):,} on record"
            with fresh_database(engine_name, folder, args.postgres_url) as url:
                print(label, flush=True)
                if existing:
                    seed(url, len(existing))
                if args.profile:
                    profiled(url, path, args.profile_step.endswith("dry"), args.profile)
                else:
                    timed_steps(label, url, path, args.problems)


if __name__ == "__main__":
    main()
