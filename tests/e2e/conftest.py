"""A real `healthcare serve` process on a loopback port, on each database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from healthcare.db.engine import create_db_engine
from tests.conftest import TEST_AUDIT_KEY, TEST_SECRET, add_token, add_user


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # PYTHONFAULTHANDLER is on: SIGABRT writes every thread's stack of the server and
            # its workers to the log, which is what a hang needs to be understood.
            os.killpg(self.process.pid, signal.SIGABRT)
            self.process.wait(30)
            pytest.fail(f"the server did not stop within {timeout} s:\n{self.log()[-30_000:]}")

    def crash(self) -> None:
        """SIGKILL the server and its workers at once, as a power cut would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(database_url: str, data_dir: Path, **env: str) -> Server:
    port = free_port()
    log_path = data_dir / f"server-{port}.log"
    environment = {
        **os.environ,
        "HEALTHCARE_SECRET_KEY": TEST_SECRET,
        "HEALTHCARE_DATABASE_URL": database_url,
        "HEALTHCARE_DATA_DIR": str(data_dir),
        # One audit key for every live server of the run: they share a database per worker.
        "HEALTHCARE_AUDIT_KEY": TEST_AUDIT_KEY,
        "WEB_CONCURRENCY": "2",
        "PYTHONFAULTHANDLER": "1",
        **env,
    }
    healthcare = Path(sys.executable).with_name("healthcare")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(healthcare), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{server.log()}")
        if _ready(server, int(environment["WEB_CONCURRENCY"])):
            return server
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    pytest.fail(f"server did not become ready:\n{server.log()}")


def _ready(server: Server, workers: int) -> bool:
    """Every worker started, and answering. One worker answers /readyz while the others may
    still be starting, and granian's worker misses a stop signal that arrives in that window
    (it is killed only after the 30 s kill timeout): a test that stops the server at once must
    not race it."""
    if server.log().count("Started worker-") < workers:
        return False
    try:
        return requests.get(f"{server.url}/readyz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def missing(reason: str) -> None:
    message = f"skipped: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def api_session(database_url: str, role: str = "admin") -> requests.Session:
    """HTTP calls as a new user of ``role``, with a token made straight in the database."""
    engine = create_db_engine(database_url)
    try:
        user_id = add_user(engine, f"e2e-{role}-{uuid.uuid4().hex[:8]}", role)
        token = add_token(engine, user_id, "e2e")
    finally:
        engine.dispose()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def write_burst_then(
    base_url: str,
    interrupt: Callable[[], None],
    http: requests.Session,
    *,
    writes: int = 300,
    threads: int = 8,
) -> list[dict[str, Any]]:
    """POST ``writes`` patients from ``threads`` threads, call ``interrupt`` (stop the server)
    once a sixth of them have been answered, and return every patient acknowledged with 201."""
    acknowledged: list[dict[str, Any]] = []

    def write(i: int) -> None:
        try:
            response = http.post(
                f"{base_url}/patients", json={"name": f"Burst {i}", "age": 20}, timeout=10
            )
        except requests.RequestException:
            return
        if response.status_code == 201:
            acknowledged.append(response.json())

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(write, i) for i in range(writes)]
        futures[writes // 6].result()
        interrupt()
    return acknowledged


@pytest.fixture(scope="session")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(database_url, tmp_path_factory.mktemp("live"))
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def http(database_url: str) -> requests.Session:
    """An admin's authenticated HTTP session for the live server (made anew for each test,
    since other tests empty the users table between tests)."""
    return api_session(database_url)
