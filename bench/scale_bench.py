"""Scale-out benchmark: the compose.scale.yaml stack (HAProxy, N app replicas, PostgreSQL) with
1 and then 3 replicas, side by side in one run, driven by wrk on 127.0.0.1 through HAProxy.

Prints req/s, p50 and p99 for: a patient by id (an audited read), a new patient (a write and
an audit chain append), and /healthz (no database at all: the ceiling a shared cache could
approach for reads, since a read's audit row is written whatever serves the record). Nothing
here asserts: it prints figures. Needs Docker with Compose v2 and the images (no registry here:
pass the local stand-ins the tests build).

    python bench/scale_bench.py --python-image IMG --postgres-image IMG --haproxy-image IMG \
        [--replicas 1 3] [--rows 20000] [--duration 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from http_bench import Result, free_port, lua_script, run_wrk

ROOT = Path(__file__).resolve().parents[1]


class Stack:
    def __init__(self, env_file: Path, project: str) -> None:
        self.env_file, self.project = env_file, project

    def compose(self, *args: str, check: bool = True) -> str:
        command = ["docker", "compose", "--project-directory", str(ROOT), "-p", self.project,
                   "--env-file", str(self.env_file), "-f", str(ROOT / "compose.yaml"),
                   "-f", str(ROOT / "compose.scale.yaml"), *args]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, check=check).stdout

    def healthcare(self, *args: str, stdin: str | None = None) -> str:
        replica = self.compose("ps", "-q", "app").split()[0]
        return subprocess.run(
            ["docker", "exec", "-i", replica, "healthcare", *args], input=stdin,
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip


def wait_for_replicas(url: str, count: int, timeout: float = 180) -> None:
    """Until HAProxy has sent requests to ``count`` different replicas."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = set()
        try:
            for _ in range(4 * count):
                with urllib.request.urlopen(f"{url}/readyz", timeout=5) as answer:  # noqa: S310
                    seen.add(answer.headers["X-Replica"])
        except OSError:
            pass
        if len(seen) >= count:
            return
        time.sleep(0.5)
    raise SystemExit(f"HAProxy did not reach {count} replicas")


def token_for_bench(stack: Stack) -> str:
    password = secrets.token_urlsafe(24)
    stack.healthcare("users", "create", "bench", "--role", "clinician", "--password-stdin",
                     stdin=password + "\n")  # fmt: skip
    return stack.healthcare("tokens", "create", "bench", "--label", "bench").strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-image", default="python:3.12-slim")
    parser.add_argument("--postgres-image", default="postgres:16-bookworm")
    parser.add_argument("--haproxy-image", default="haproxy:2.8")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    port, project = free_port(), f"hcbench{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        env_file = work / ".env"
        env_file.write_text(
            f"HEALTHCARE_SECRET_KEY={secrets.token_urlsafe(48)}\n"
            f"POSTGRES_PASSWORD={secrets.token_hex(16)}\nHEALTHCARE_PORT={port}\n"
            f"PYTHON_IMAGE={args.python_image}\nPOSTGRES_IMAGE={args.postgres_image}\n"
            f"HAPROXY_IMAGE={args.haproxy_image}\nHEALTHCARE_IMAGE_TAG={project}\n"
        )
        stack, url = Stack(env_file, project), f"http://127.0.0.1:{port}"
        try:
            stack.compose("build", "app")
            results: dict[int, dict[str, Result]] = {}
            for count in args.replicas:
                stack.compose("up", "-d", "--scale", f"app={count}")
                wait_for_replicas(url, count)
                if not results:
                    stack.healthcare("seed", "--count", str(args.rows), "--random-seed", "1")
                    token = token_for_bench(stack)
                    scripts = {k: lua_script(work, k, args.rows, token) for k in ("get", "post")}
                    scripts["healthz"] = work / "healthz.lua"
                    scripts["healthz"].write_text(
                        'request = function() return wrk.format("GET", "/healthz") end\n'
                    )
                results[count] = {
                    kind: run_wrk(url, script, args.connections, args.duration)
                    for kind, script in scripts.items()
                }
            print_results(results, args)
        finally:
            stack.compose("down", "-v", check=False)
            subprocess.run(["docker", "image", "rm", "-f", f"healthcare:{project}"],
                           capture_output=True, check=False)  # fmt: skip


def print_results(results: dict[int, dict[str, Result]], args: argparse.Namespace) -> None:
    print(f"\nwrk -t2 -c{args.connections} -d{args.duration}s through HAProxy, {args.rows} rows")
    print(f"{'replicas':>8} {'endpoint':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} errors")
    for count, by_kind in results.items():
        for kind, r in by_kind.items():
            print(f"{count:>8} {kind:<10} {r.requests_per_second:>9.0f} {r.p50_ms:>8.1f} "
                  f"{r.p99_ms:>8.1f} {r.errors:>7}")  # fmt: skip
    print(json.dumps({n: {k: vars(r) for k, r in v.items()} for n, v in results.items()}))


if __name__ == "__main__":
    main()
