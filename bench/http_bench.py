"""HTTP benchmark: this service against the plain baseline, side by side in one run.

Seeds 100,000 patients, makes a clinician with an API token (every request of ours is
authenticated and audited, reads included), serves them with `healthcare serve` (the production
configuration) and with the baseline (Flask + sqlite3 under gunicorn, 2 sync workers), drives
both with wrk from a second process on 127.0.0.1, and prints req/s, p50 and p99 for each
endpoint at 32 and 64 connections, with our figure divided by the baseline's. Then times name
searches over a larger table in-process. Nothing here asserts: it prints figures.

    ./run bench [--rows 100000] [--duration 10] [--search-rows 1000000]
"""

from __future__ import annotations

import argparse
import os
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


def lua_script(path: Path, kind: str, rows: int, token: str) -> Path:
    """A wrk script; every request carries the API token (the baseline ignores it)."""
    authorization = f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    scripts = {
        "get": "request = function() return "
        f'wrk.format("GET", "/patients/" .. math.random(1, {rows})) end',
        "list": 'request = function() return wrk.format("GET", "/patients?limit=50") end',
        "search": "terms = {"
        + ", ".join(f'"{t.replace(" ", "%20")}"' for t in SEARCH_TERMS)
        + '}\nrequest = function() return wrk.format("GET", "/patients?q=" .. '
        "terms[math.random(1, #terms)]) end",
        "post": 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        'request = function() return wrk.format(nil, "/patients", nil, '
        '\'{"name": "Bench Patient \' .. math.random(1, 1000000) .. \'", "age": 40, '
        '"disease": "Asthma"}\') end',
    }
    script = path / f"{kind}.lua"
    script.write_text(authorization + scripts[kind] + "\n")
    return script


LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, script: Path, connections: int, duration: int) -> Result:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
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


def healthcare(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "HEALTHCARE_DATA_DIR": str(data_dir), "HEALTHCARE_ENV": "development"}
    return subprocess.run(
        [str(BIN / "healthcare"), *args], env=env, input=stdin, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip


def seed_service(data_dir: Path, rows: int) -> None:
    healthcare(data_dir, "seed", "--count", str(rows), "--random-seed", "1")


def bench_token(data_dir: Path) -> str:
    """A clinician and an API token for it, made the way an operator makes them."""
    password = secrets.token_urlsafe(24)
    healthcare(data_dir, "users", "create", "bench", "--role", "clinician", "--password-stdin",
               stdin=password + "\n")  # fmt: skip
    return healthcare(data_dir, "tokens", "create", "bench", "--label", "bench").strip()


def audited_reads(database: Path) -> dict[str, int]:
    conn = sqlite3.connect(database)
    try:
        rows = conn.execute(
            "SELECT action, count(*) FROM audit_events WHERE username = 'bench' GROUP BY action"
        ).fetchall()
    finally:
        conn.close()
    return dict(rows)


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


def measure(
    servers: dict[str, str],
    scripts: dict[str, Path],
    connections: list[int],
    duration: int,
    repeat: int,
) -> dict[str, dict[tuple[str, int], Result]]:
    """Every figure for every server, interleaved (ours, baseline, ours, ...) so that drift in
    the machine's speed hits both alike; the median of ``repeat`` runs is kept."""
    runs: dict[str, dict[tuple[str, int], list[Result]]] = {name: {} for name in servers}
    for kind, script in scripts.items():
        for conns in connections:
            for _ in range(repeat):
                for name, url in servers.items():
                    if kind == "search" and name == "baseline":
                        continue
                    result = run_wrk(url, script, conns, duration)
                    runs[name].setdefault((kind, conns), []).append(result)
    return {
        name: {
            key: sorted(results, key=lambda r: r.requests_per_second)[len(results) // 2]
            for key, results in figures.items()
        }
        for name, figures in runs.items()
    }


def print_table(ours: dict, baseline: dict) -> None:
    figures = f"{'req/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'err':>4}"
    print(f"\n{'endpoint':<8} {'conns':>5} | ours {figures} | baseline {figures} | {'ratio':>6}")
    for (kind, conns), mine in ours.items():
        base = baseline.get((kind, conns))
        line = (f"{kind:<8} {conns:>5} | {mine.requests_per_second:>10.0f} {mine.p50_ms:>7.2f} "
                f"{mine.p99_ms:>7.2f} {mine.errors:>4} | ")  # fmt: skip
        if base:
            ratio = mine.requests_per_second / base.requests_per_second
            line += (f"{base.requests_per_second:>10.0f} {base.p50_ms:>7.2f} {base.p99_ms:>7.2f} "
                     f"{base.errors:>4} | {ratio:>5.2f}x")  # fmt: skip
        else:
            line += f"{'(no baseline)':>33} |"
        print(line)


def search_timings(data_dir: Path, rows: int) -> None:
    """Median and worst time per name search, in-process, over ``rows`` patients."""
    os.environ.update(HEALTHCARE_DATA_DIR=str(data_dir), HEALTHCARE_ENV="development")
    from healthcare.auth.access import Actor, Role
    from healthcare.config import load_settings
    from healthcare.db.database import Database
    from healthcare.db.revision_cache import RevisionCache
    from healthcare.patients import service
    from healthcare.patients.schemas import PatientQuery

    db = Database.from_url(load_settings().database_url)
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
    parser.add_argument("--workers", type=int, help="override WEB_CONCURRENCY for our server")
    parser.add_argument("--threads", type=int, help="override HEALTHCARE_BLOCKING_THREADS")
    parser.add_argument(
        "--endpoints", nargs="+", default=["get", "list", "search", "post"],
        choices=["get", "list", "search", "post"],
    )  # fmt: skip
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="healthcare-bench-") as tmp:
        work = Path(tmp)
        data_dir = work / "service"
        print(f"seeding {args.rows:,} patients ...", flush=True)
        seed_service(data_dir, args.rows)
        make_baseline_database(data_dir / "healthcare.db", work / "baseline.db")
        token = bench_token(data_dir)
        scripts = {kind: lua_script(work, kind, args.rows, token) for kind in args.endpoints}

        ours_port, baseline_port = free_port(), free_port()
        server_env = {
            name: str(value)
            for name, value in [("WEB_CONCURRENCY", args.workers),
                                ("HEALTHCARE_BLOCKING_THREADS", args.threads)]
            if value is not None
        }  # fmt: skip
        service_process = start_service(data_dir, ours_port, server_env)
        baseline_process = start_baseline(work / "baseline.db", baseline_port, work)
        servers = {
            "ours": f"http://127.0.0.1:{ours_port}",
            "baseline": f"http://127.0.0.1:{baseline_port}",
        }
        try:
            figures = measure(servers, scripts, args.connections, args.duration, args.repeat)
        finally:
            stop(service_process)
            stop(baseline_process)
        ours, baseline = figures["ours"], figures["baseline"]
        print_table(ours, baseline)
        audited = audited_reads(data_dir / "healthcare.db")
        print(f"\naudit rows written for the benchmark's token: {audited}")
        if args.search_rows:
            search_dir = work / "search"
            print(f"\nseeding {args.search_rows:,} patients for the search timing ...", flush=True)
            seed_service(search_dir, args.search_rows)
            search_timings(search_dir, args.search_rows)


if __name__ == "__main__":
    main()
