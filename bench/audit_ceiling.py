"""How many audit events per second the hash chain can append, on each engine, from one
process and from several at once (as several server workers or servers sharing one database
do). Each writer appends through the same path the service uses (``Database.write`` with the
chain's batching); ``--batch 1`` is a change's own transaction, the default batch of 256 is a
flush of pending read events. Prints events/s; nothing asserts.

    .venv/bin/python bench/audit_ceiling.py [--postgres-url URL] [--seconds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import tempfile
import time
from pathlib import Path

from healthcare.audit.pipeline import open_database
from healthcare.audit.trail import Event, append, verify
from healthcare.db import migrate


def append_for(url: str, seconds: float, batch: int) -> int:
    """Append batches of events for ``seconds``; how many events were committed."""
    db = open_database(url)
    written, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        events = [Event("patient.read", username="bench", patient_id=i % 1000 + 1,
                        request_id=secrets.token_hex(8)) for i in range(batch)]  # fmt: skip
        db.write(lambda conn, events=events: append(conn, events))
        written += batch
    db.dispose()
    return written


def rate(url: str, processes: int, seconds: float, batch: int) -> float:
    if processes == 1:
        return append_for(url, seconds, batch) / seconds
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        counts = pool.starmap(append_for, [(url, seconds, batch)] * processes)
    return sum(counts) / seconds


def fresh_database(kind: str, folder: Path, postgres_url: str | None) -> str:
    if kind == "sqlite":
        url = f"sqlite:///{folder / f'audit-{secrets.token_hex(4)}.db'}"
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        name = f"audit_bench_{secrets.token_hex(4)}"
        plain = str(postgres_url).replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    db = open_database(url)
    migrate.upgrade(db.engine)
    db.dispose()
    return url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres-url")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.postgres_url else ["sqlite"]
    print(f"{'engine':<11} {'processes':>9} {'batch':>6} {'events/s':>10}  chain")
    with tempfile.TemporaryDirectory() as folder:
        for kind in kinds:
            for batch in args.batches:
                for processes in args.processes:
                    url = fresh_database(kind, Path(folder), args.postgres_url)
                    per_second = rate(url, processes, args.seconds, batch)
                    db = open_database(url)
                    report = verify(db.engine)
                    db.dispose()
                    chain = "intact" if report.intact else report.reason
                    print(f"{kind:<11} {processes:>9} {batch:>6} {per_second:>10.0f}  {chain}",
                          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
