"""Where a live server worker's time goes: `healthcare serve` (its production configuration)
on seeded patients, wrk driving one endpoint at 32 connections, and py-spy sampling one
worker process while it holds the interpreter (``--gil``: time spent computing, not waiting).
Each sample is put in one part of the request path by the deepest frame of this package on
its stack:

- the server: the event loop and granian's ASGI glue and threads (no frame of ours), and the
  two ``send`` calls that hand the answer to granian;
- Flask and Werkzeug: their own request machinery (the request context, URL matching,
  dispatch, the response object), below our middleware and above our hooks and views;
- the app: the ASGI-to-WSGI bridge (``WholeRequests``: the body, the environ, the answer),
  our hooks, views, service, database reads, audit, log line and metrics, listed by the app
  function the time is under, and the worker's own threads (the group-commit writer that
  appends the read audit, the log flusher).

    .venv/bin/python bench/profile_live.py [--endpoint get] [--seconds 10] [--rows 100000]

Nothing here asserts: it prints shares of the worker's interpreter time and the req/s of the
run. py-spy pauses the worker it samples 300 times a second, which costs the server about a
quarter of its throughput (2,254-2,533 GET/s against 3,281-3,347 unsampled, 7 December); the
shares are what that worker did meanwhile. Work done with the interpreter let go (SQLite's
statements, granian's Rust side, the kernel) is not in them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import http_bench as hb

PACKAGE = "(healthcare/"
CLI = "(healthcare/cli.py"  # `serve` is below every frame of the worker's main thread
FRAMEWORK = ("flask/", "werkzeug/", "flask_openapi3/")
# Our frames that only pass a request on to the framework or the server.
ADAPTERS = ("RequestMiddleware.__call__", "run_wsgi", "WholeRequests._answer")
SEND = "WholeRequests.__call__"


def part_of(frames: list[str]) -> str:
    """The part of the request path a sample (outermost frame first) is in."""
    thread = next((f.partition("): ")[2] or "unnamed" for f in frames if f.startswith("thread (")),
                  "MainThread")  # fmt: skip
    if thread == "unnamed":  # granian's own threads, scheduling work on the event loop
        return "server: granian's threads"
    if thread != "MainThread" and not thread.startswith("request"):  # the writer, the flushers
        return f"app: the {thread.rstrip('0123456789_-')} thread"
    ours = [i for i, frame in enumerate(frames) if PACKAGE in frame and CLI not in frame]
    names = [frame.split(" (")[0] for frame in frames]
    if not ours:
        return "server: event loop and ASGI glue"
    deepest = ours[-1]
    if names[deepest] == SEND:
        return "server: sending the answer (granian's ASGI send)"
    below = frames[deepest + 1] if deepest + 1 < len(frames) else ""
    if names[deepest] in ADAPTERS and any(library in below for library in FRAMEWORK):
        return "Flask and Werkzeug: request machinery"
    requests = [i for i in ours if names[i] == "RequestMiddleware.__call__"]
    if not requests:
        return "app: the ASGI-to-WSGI bridge (body, environ, answer)"
    if names[deepest] in ADAPTERS:
        return "app: adapter and middleware"
    app = [names[i] for i in ours if i > requests[-1] and names[i] not in ADAPTERS]
    return "app: " + " > ".join(app[:2])


def shares(raw: Path) -> tuple[Counter[str], int]:
    parts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        parts[part_of(stack.split(";"))] += int(count)
        total += int(count)
    return parts, total


def profile(endpoint: str, seconds: int, rows: int, work: Path) -> tuple[hb.Result, Path]:
    data_dir = work / "service"
    print(f"seeding {rows:,} patients ...", flush=True)
    hb.seed_service(data_dir, rows)
    token = hb.bench_token(data_dir)
    prefixes = hb.search_prefixes(data_dir / "healthcare.db")
    script = hb.lua_script(work, endpoint, rows, token, prefixes)
    port = hb.free_port()
    server = hb.start_service(data_dir, port, {})
    try:
        url = f"http://127.0.0.1:{port}"
        hb.run_wrk(url, script, 32, 2)  # warm up
        worker = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True,
                                text=True, check=True).stdout.split()[0]  # fmt: skip
        raw = work / "samples.txt"
        spy = subprocess.Popen(
            [str(hb.BIN / "py-spy"), "record", "--pid", worker, "--duration", str(seconds),
             "--rate", "300", "--format", "raw", "--output", str(raw), "--gil", "--threads"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        result = hb.run_wrk(url, script, 32, seconds)
        if spy.wait() != 0 or not raw.exists():
            raise SystemExit(f"py-spy could not sample the worker: {spy.stderr.read().decode()}")
        return result, raw
    finally:
        hb.stop(server)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", default="get", choices=["get", "list", "search", "post"])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--keep-samples", type=Path, help="copy py-spy's raw samples here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("profile_live: the load comes from wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="healthcare-profile-") as tmp:
        result, raw = profile(args.endpoint, args.seconds, args.rows, Path(tmp))
        parts, total = shares(raw)
        if not total:
            raise SystemExit("py-spy took no samples: the worker never held the interpreter")
        if args.keep_samples:
            shutil.copyfile(raw, args.keep_samples)
    print(f"\n{args.endpoint}: {result.requests_per_second:,.0f} req/s, p99 {result.p99_ms} ms, "
          f"{total:,} samples of one worker holding the interpreter")  # fmt: skip
    for part, count in parts.most_common(args.top):
        print(f"{count / total * 100:6.1f} %  {part}")
    for whole in ("server", "Flask and Werkzeug", "app"):
        share = sum(count for part, count in parts.items() if part.startswith(whole))
        print(f"{whole}, in all: {share / total * 100:.1f} %")


if __name__ == "__main__":
    main()
