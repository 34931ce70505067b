"""HTTP benchmark: this service and its peers, side by side in one run, on both engines.

Seeds 100,000 patients, makes a clinician with an API token (every request of ours is
authenticated and audited, reads included) and serves them with `healthcare serve` (the
production configuration). Beside it, on copies of the same rows, at equal durability (SQLite
WAL + ``synchronous=FULL``): peer (a) tuned plain Flask + sqlite3 (``bench/peer_flask.py``),
peer (b) FastAPI + sqlite3 (``bench/peer_fastapi_sqlite.py``), and the first release's plain
baseline (``bench/baseline_app.py``, gunicorn, rollback journal). With ``--postgres-url``, ours
on PostgreSQL and peer (c) FastAPI + psycopg pool (``bench/peer_fastapi_pg.py``) as well.
wrk drives each from a second process on 127.0.0.1, interleaved, at 32 and 64 connections:
GET by id, listings at random offsets, searches for random prefixes (1,000 distinct ones from
the data), each beside its cached form (one repeated URL), and POST. Then times name searches
over a larger table in-process. Nothing here asserts: it prints figures.

    ./run bench [--rows 100000] [--duration 10] [--search-rows 1000000] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from healthcare.patients.seed import FAMILY, GIVEN

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
SEARCH_TERMS = ["ver", "asha", "zoe", "garc", "smi", "asha verma", "nguyen", "petro", "kim", "ol"]


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def lua_script(path: Path, kind: str, rows: int, token: str, prefixes: list[str]) -> Path:
    """A wrk script; every request carries the API token (the peers ignore it). The uncached
    kinds draw a random id, offset or search prefix for each request; the ``-cached`` kinds
    repeat one URL, as the first release's benchmark did."""
    authorization = f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    terms = "terms = {" + ", ".join(f'"{quote(t)}"' for t in prefixes) + "}\n"
    # New patients are named like the seeded ones, so each create's duplicate check meets the
    # candidates a clinic's would (people of the same name already on record).
    names = "".join(
        f"{table} = {{" + ", ".join(f'"{n}"' for n in chosen) + "}\n"
        for table, chosen in (("given", GIVEN), ("family", FAMILY))
    )
    scripts = {
        "get": "request = function() return "
        f'wrk.format("GET", "/patients/" .. math.random(1, {rows})) end',
        "list": 'request = function() return wrk.format("GET", '
        f'"/patients?limit=50&offset=" .. math.random(0, {rows - 50})) end',
        "list-cached": 'request = function() return wrk.format("GET", "/patients?limit=50") end',
        "search": terms + 'request = function() return wrk.format("GET", "/patients?q=" .. '
        "terms[math.random(1, #terms)]) end",
        "search-cached": 'request = function() return wrk.format("GET", "/patients?q=ver") end',
        "post": 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        + names
        + 'request = function() return wrk.format(nil, "/patients", nil, \'{"name": "\' .. '
        'given[math.random(#given)] .. " " .. family[math.random(#family)] .. '
        '\'", "age": \' .. math.random(0, 99) .. \', "disease": "Asthma"}\') end',
    }
    script = path / f"{kind}.lua"
    script.write_text(authorization + scripts[kind] + "\n")
    return script


def search_prefixes(database: Path, wanted: int = 1000) -> list[str]:
    """At least ``wanted`` distinct name prefixes that occur in the data (3 to 9 letters)."""
    conn = sqlite3.connect(database)
    prefixes: set[str] = set()
    try:
        for size in range(3, 10):
            rows = conn.execute(
                "SELECT DISTINCT lower(substr(name, 1, ?)) FROM patients", (size,)
            ).fetchall()
            prefixes.update(p for (p,) in rows if p.replace(" ", "").isalpha())
            if len(prefixes) >= wanted:
                break
    finally:
        conn.close()
    return random.Random(1).sample(sorted(prefixes), min(len(prefixes), max(wanted, 1000)))


LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, script: Path, connections: int, duration: int) -> Result:
    ran = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if ran.returncode != 0:
        raise SystemExit(f"wrk failed on {url} with {script.name}: {ran.stdout}{ran.stderr}")
    output = ran.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latency = {p: float(v) * UNIT_MS[u] for p, v, u in LATENCY.findall(output)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    return Result(rate, latency.get("50", 0.0), latency.get("99", 0.0), failed)


def healthcare(data_dir: Path, *args: str, stdin: str | None = None, url: str = "") -> str:
    env = {**os.environ, "HEALTHCARE_DATA_DIR": str(data_dir), "HEALTHCARE_ENV": "development",
           "HEALTHCARE_DATABASE_URL": url}  # fmt: skip
    return subprocess.run(
        [str(BIN / "healthcare"), *args], env=env, input=stdin, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip


def seed_service(data_dir: Path, rows: int, url: str = "") -> None:
    healthcare(data_dir, "seed", "--count", str(rows), "--random-seed", "1", url=url)


def bench_token(data_dir: Path, url: str = "") -> str:
    """A clinician and an API token for it, made the way an operator makes them."""
    password = secrets.token_urlsafe(24)
    healthcare(data_dir, "users", "create", "bench", "--role", "clinician", "--password-stdin",
               stdin=password + "\n", url=url)  # fmt: skip
    return healthcare(data_dir, "tokens", "create", "bench", "--label", "bench", url=url).strip()


def audited_reads(database: Path) -> dict[str, int]:
    conn = sqlite3.connect(database)
    try:
        rows = conn.execute(
            "SELECT action, count(*) FROM audit_events WHERE username = 'bench' GROUP BY action"
        ).fetchall()
    finally:
        conn.close()
    return dict(rows)


def answer_statuses(log: Path) -> dict[int, int]:
    """How many answers of each status our access log shows (a 503 is the audit's bound)."""
    counts: dict[int, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"message":"request"' in line:
            status = json.loads(line)["status"]
            counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))


def make_baseline_database(service_db: Path, baseline_db: Path) -> None:
    conn = sqlite3.connect(baseline_db)
    conn.execute(
        "CREATE TABLE patients "
        "(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER, disease TEXT)"
    )
    conn.execute(f"ATTACH DATABASE '{service_db}' AS service")
    conn.execute("INSERT INTO patients SELECT id, name, age, disease FROM service.patients")
    conn.commit()
    conn.close()


def make_peer_database(service_db: Path, peer_db: Path) -> None:
    """The peers' copy: the same rows, WAL, and names indexed for case-insensitive prefixes."""
    conn = sqlite3.connect(peer_db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE NOT NULL, "
        "age INTEGER, disease TEXT)"
    )
    conn.execute(f"ATTACH DATABASE '{service_db}' AS service")
    conn.execute("INSERT INTO patients SELECT id, name, age, disease FROM service.patients")
    conn.execute("CREATE INDEX ix_peer_name ON patients (name)")
    conn.commit()
    conn.close()


def make_peer_table(postgres_url: str) -> None:
    """peer_patients beside ours in the PostgreSQL database, indexed for name prefixes."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS peer_patients")
        conn.execute(
            "CREATE TABLE peer_patients (id SERIAL PRIMARY KEY, name TEXT NOT NULL, age INT, "
            "disease TEXT)"
        )
        conn.execute("INSERT INTO peer_patients SELECT id, name, age, disease FROM patients")
        conn.execute("SELECT setval('peer_patients_id_seq', (SELECT max(id) FROM peer_patients))")
        conn.execute("CREATE INDEX ix_peer_name ON peer_patients (lower(name) text_pattern_ops)")
        conn.execute("ANALYZE peer_patients")


def fresh_postgres_database(server_url: str) -> str:
    """A new database on the server for this run (left behind: it is named bench_...)."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"bench_{secrets.token_hex(4)}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def start_peer(
    module: str, interface: str, port: int, env: dict[str, str], log: Path, threads: int = 1
) -> subprocess.Popen[bytes]:
    process = start(
        [str(BIN / "granian"), "--interface", interface, "--workers", "2",
         "--blocking-threads", str(threads), "--host", "127.0.0.1", "--port", str(port),
         "--no-ws", f"bench.{module}:app"],
        {"PYTHONPATH": str(HERE.parent), **env},
        log,
    )  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}/patients/1")
    return process


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env={**os.environ, **env}, stdout=out, stderr=out)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def start_service(data_dir: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = start(
        [str(BIN / "healthcare"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        {"HEALTHCARE_DATA_DIR": str(data_dir), "HEALTHCARE_ENV": "production",
         "HEALTHCARE_SECRET_KEY": "bench-" + "x" * 40, "HEALTHCARE_LOG_LEVEL": "INFO", **env},
        data_dir / "service.log",
    )  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}/readyz")
    return process


def start_baseline(database: Path, port: int, log_dir: Path) -> subprocess.Popen[bytes]:
    process = start(
        [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir", str(HERE),
         "baseline_app:app"],
        {"BASELINE_DATABASE": str(database)},
        log_dir / "baseline.log",
    )  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}/patients/1")
    return process


SEARCHES = ("search", "search-cached")
PEERS = {"sqlite": ("peer-a", "peer-b", "baseline"), "postgresql": ("peer-c",)}


def measure(
    servers: dict[str, tuple[str, dict[str, Path]]],
    connections: list[int],
    duration: int,
    repeat: int,
) -> dict[str, dict[tuple[str, int], Result]]:
    """Every figure for every server, interleaved (ours, the peers, ours, ...) so that drift
    in the machine's speed hits all alike; the median of ``repeat`` runs is kept."""
    runs: dict[str, dict[tuple[str, int], list[Result]]] = {name: {} for name in servers}
    kinds = next(iter(servers.values()))[1]
    for kind in kinds:
        for conns in connections:
            for _ in range(repeat):
                for name, (url, scripts) in servers.items():
                    if kind in SEARCHES and name == "baseline":
                        continue  # the first release's baseline has no search
                    result = run_wrk(url, scripts[kind], conns, duration)
                    runs[name].setdefault((kind, conns), []).append(result)
    return {
        name: {
            key: sorted(results, key=lambda r: r.requests_per_second)[len(results) // 2]
            for key, results in figures.items()
        }
        for name, figures in runs.items()
    }


def print_table(figures: dict[str, dict[tuple[str, int], Result]], ours: str, peers: tuple) -> None:
    """req/s and p99 of ours and each peer, and ours divided by each peer."""
    present = [p for p in peers if p in figures]
    head = f"{'endpoint':<14} {'conns':>5} | {ours + ' req/s':>16} {'p99':>7}"
    for peer in present:
        head += f" | {peer + ' req/s':>16} {'p99':>7} {'ratio':>6}"
    print("\n" + head)
    for (kind, conns), mine in figures[ours].items():
        line = (f"{kind:<14} {conns:>5} | {mine.requests_per_second:>16.0f} "
                f"{mine.p99_ms:>7.1f}")  # fmt: skip
        for peer in present:
            theirs = figures[peer].get((kind, conns))
            if theirs is None:
                line += f" | {'-':>16} {'-':>7} {'-':>6}"
                continue
            ratio = mine.requests_per_second / theirs.requests_per_second
            line += (f" | {theirs.requests_per_second:>16.0f} {theirs.p99_ms:>7.1f} "
                     f"{ratio:>5.2f}x")  # fmt: skip
        errors = [f"{name}={f[(kind, conns)].errors}" for name, f in figures.items()
                  if (kind, conns) in f and f[(kind, conns)].errors]  # fmt: skip
        print(line + (f"   errors: {' '.join(errors)}" if errors else ""))


def search_timings(data_dir: Path, rows: int) -> None:
    """Median and worst time per name search, in-process, over ``rows`` patients."""
    os.environ.update(HEALTHCARE_DATA_DIR=str(data_dir), HEALTHCARE_ENV="development")
    from healthcare.audit.pipeline import open_database
    from healthcare.auth.access import Actor, Role
    from healthcare.config import load_settings
    from healthcare.db.revision_cache import RevisionCache
    from healthcare.patients import service
    from healthcare.patients.schemas import PatientQuery

    db = open_database(load_settings().database_url)
    db.pages = RevisionCache(capacity=0)  # time the queries, not the page cache
    reader = Actor(None, "bench", Role.VIEWER, client="local")
    print(f"\nname search over {rows:,} patients (in-process, page of 50 plus total):")
    for term in SEARCH_TERMS:
        query = PatientQuery(q=term)
        service.list_patients(db, reader, query)
        times = []
        for _ in range(30):
            started = time.perf_counter()
            page = service.list_patients(db, reader, query)
            times.append((time.perf_counter() - started) * 1000)
        print(f"  q={term!r:<14} median {statistics.median(times):6.2f} ms   "
              f"max {max(times):6.2f} ms   total {page['total']:,}")  # fmt: skip
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median kept)")
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--search-rows", type=int, default=1_000_000, help="0 to skip")
    parser.add_argument("--postgres-url", help="also run ours and peer (c) on this server")
    parser.add_argument(
        "--endpoints", nargs="+", default=["get", "list", "list-cached", "search",
                                            "search-cached", "post"],
        choices=["get", "list", "list-cached", "search", "search-cached", "post"],
    )  # fmt: skip
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="healthcare-bench-") as tmp:
        work = Path(tmp)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            servers = start_everything(work, args, processes)
            figures = measure(servers, args.connections, args.duration, args.repeat)
        finally:
            for process in processes:
                stop(process)
        print(f"\nload average during the run: {os.getloadavg()}")
        print_table(figures, "ours", PEERS["sqlite"])
        if "ours-pg" in figures:
            print_table(figures, "ours-pg", PEERS["postgresql"])
        for log in sorted(work.glob("service*/service.log")):
            print(f"answers of ours by status ({log.parent.name}): {answer_statuses(log)}")
        audited = audited_reads(work / "service" / "healthcare.db")
        print(f"\naudit rows written for the benchmark's token (SQLite): {audited}")
        if args.search_rows:
            search_dir = work / "search"
            print(f"\nseeding {args.search_rows:,} patients for the search timing ...", flush=True)
            seed_service(search_dir, args.search_rows)
            search_timings(search_dir, args.search_rows)


def start_everything(
    work: Path, args: argparse.Namespace, processes: list[subprocess.Popen[bytes]]
) -> dict[str, tuple[str, dict[str, Path]]]:
    """Seed every database, write the wrk scripts, start ours and each peer (into
    ``processes`` as each starts, so that the caller stops whatever did start)."""
    data_dir = work / "service"
    print(f"seeding {args.rows:,} patients ...", flush=True)
    seed_service(data_dir, args.rows)
    make_baseline_database(data_dir / "healthcare.db", work / "baseline.db")
    for peer in ("a", "b"):
        make_peer_database(data_dir / "healthcare.db", work / f"peer-{peer}.db")
    token = bench_token(data_dir)
    prefixes = search_prefixes(data_dir / "healthcare.db")
    print(f"{len(prefixes)} distinct search prefixes", flush=True)
    scripts = {kind: lua_script(work, kind, args.rows, token, prefixes) for kind in args.endpoints}
    ports = {name: free_port() for name in ("ours", "peer-a", "peer-b", "baseline", "ours-pg",
                                            "peer-c")}  # fmt: skip
    processes.append(start_service(data_dir, ports["ours"], {}))
    processes.append(start_peer("peer_flask", "wsgi", ports["peer-a"],
                                {"PEER_DATABASE": str(work / "peer-a.db")}, work / "peer-a.log",
                                threads=4))  # fmt: skip
    processes.append(start_peer("peer_fastapi_sqlite", "asgi", ports["peer-b"],
                                {"PEER_DATABASE": str(work / "peer-b.db")},
                                work / "peer-b.log"))  # fmt: skip
    processes.append(start_baseline(work / "baseline.db", ports["baseline"], work))
    servers = {name: (f"http://127.0.0.1:{ports[name]}", scripts)
               for name in ("ours", "peer-a", "peer-b", "baseline")}  # fmt: skip
    if args.postgres_url:
        pg_dir = work / "service-pg"
        pg_dir.mkdir()
        url = fresh_postgres_database(args.postgres_url)
        seed_service(pg_dir, args.rows, url)
        pg_token = bench_token(pg_dir, url)
        pg_scripts_dir = work / "pg-scripts"
        pg_scripts_dir.mkdir()
        pg_scripts = {kind: lua_script(pg_scripts_dir, kind, args.rows, pg_token, prefixes)
                      for kind in args.endpoints}  # fmt: skip
        make_peer_table(url.replace("postgresql+psycopg://", "postgresql://"))
        processes.append(start_service(pg_dir, ports["ours-pg"], {"HEALTHCARE_DATABASE_URL": url}))
        processes.append(start_peer("peer_fastapi_pg", "asgi", ports["peer-c"],
                                    {"PEER_POSTGRES": url.replace("postgresql+psycopg://",
                                                                  "postgresql://")},
                                    work / "peer-c.log"))  # fmt: skip
        for name in ("ours-pg", "peer-c"):
            servers[name] = (f"http://127.0.0.1:{ports[name]}", pg_scripts)
    return servers


if __name__ == "__main__":
    main()
