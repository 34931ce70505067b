"""Several replicas behind HAProxy on one PostgreSQL (compose.scale.yaml), under faults.

Needs what the container tests need (an engine, Compose v2, HEALTHCARE_TEST_BASE_IMAGE); the
PostgreSQL and HAProxy images are stand-ins built from that base (no registry is reachable
here). All traffic goes to the port HAProxy publishes on 127.0.0.1; every load loop is bounded
in requests and in time."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGKILL

import pytest
import requests

from tests.e2e.conftest import docker, free_port
from tests.e2e.test_container import ROOT, compose_base_image

pytestmark = pytest.mark.slow

REPLICAS = 3
CLIENTS = 32
LOAD_SECONDS = 40
STANDINS = {"postgres": "postgres_standin", "haproxy": "haproxy_standin"}
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
# A revoked token or a disabled user is refused by every replica within this bound (the
# one-second credentials cache of healthcare.db.database, plus a margin for a loaded machine).
REVOCATION_BOUND_SECONDS = 1.5


@dataclass
class Stack:
    project: str
    env_file: Path
    url: str
    admin: requests.Session = field(default_factory=requests.Session)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return docker("compose", *self.files(), *args, check=check)

    def files(self) -> list[str]:
        return ["--project-directory", str(ROOT), "-p", self.project, "--env-file",
                str(self.env_file), "-f", str(ROOT / "compose.yaml"),
                "-f", str(ROOT / "compose.scale.yaml")]  # fmt: skip

    def start(self) -> None:
        """Bring the stack up; if it does not come up, fail with what its services logged."""
        try:
            self.compose("up", "-d", "--scale", f"app={REPLICAS}")
            self.served_by(REPLICAS)
        except AssertionError as failure:
            logs = self.compose("logs", "--no-color", "--tail", "60", check=False)
            raise AssertionError(f"{failure}\n{logs.stdout}{logs.stderr}") from failure

    def replicas(self) -> list[str]:
        return self.compose("ps", "-q", "app").stdout.split()

    def healthy(self, container: str) -> bool:
        state = json.loads(docker("inspect", container).stdout)[0]["State"]
        return state.get("Health", {}).get("Status") == "healthy"

    def served_by(self, count: int, timeout: float = 120) -> None:
        """Wait until HAProxy sends requests to ``count`` different replicas."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            try:
                seen = {self.replica_of(requests.get(f"{self.url}/readyz", timeout=5))
                        for _ in range(4 * count)}  # fmt: skip
            except requests.ConnectionError:  # HAProxy itself is still starting
                seen = set()
            if len(seen) >= count:
                return
            time.sleep(0.5)
        raise AssertionError(f"HAProxy reached only {sorted(seen)}")

    @staticmethod
    def replica_of(response: requests.Response) -> str:
        return response.headers.get("X-Replica", "?")

    def trouble(self, tally: Tally) -> str:
        """Each failure the clients saw, then HAProxy's log (it logs only the requests that
        went wrong, and replicas' state)."""
        log = self.compose("logs", "--no-log-prefix", "balancer", check=False).stdout[-20_000:]
        return f"{dict(tally.failures)}\n{log}"

    def cli(self, *args: str) -> str:
        """The ``healthcare`` command in a running replica."""
        return docker("exec", self.replicas()[0], "healthcare", *args).stdout

    def patients_named(self, prefix: str) -> set[str]:
        names: set[str] = set()
        offset = 0
        while True:
            page = self.admin.get(f"{self.url}/patients", params={"limit": 500, "offset": offset},
                                  timeout=30).json()  # fmt: skip
            names |= {p["name"] for p in page["items"] if p["name"].startswith(prefix)}
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return names


def _build_standin(kind: str, base: str, tag: str) -> str:
    image = f"healthcare-{kind}-standin:{tag}"
    build = subprocess.run(
        ["docker", "build", "-q", "--build-arg", f"BASE_IMAGE={base}", "-t", image,
         str(ROOT / "tests" / "e2e" / STANDINS[kind])],
        capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"},
        timeout=600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    return image


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = compose_base_image()
    project = f"hcscale{uuid.uuid4().hex[:8]}"
    images = {kind: _build_standin(kind, base, project) for kind in STANDINS}
    port = free_port()
    env_file = tmp_path_factory.mktemp("scale") / ".env"
    env_file.write_text(
        f"HEALTHCARE_SECRET_KEY={uuid.uuid4().hex}{uuid.uuid4().hex}\nPYTHON_IMAGE={base}\n"
        f"HEALTHCARE_PORT={port}\nHEALTHCARE_IMAGE_TAG={project}\n"
        f"POSTGRES_PASSWORD={uuid.uuid4().hex}\nPOSTGRES_IMAGE={images['postgres']}\n"
        f"HAPROXY_IMAGE={images['haproxy']}\nHEALTHCARE_APP_DB_PASSWORD={uuid.uuid4().hex}\n"
        f"HEALTHCARE_ADMIN_PASSWORD=scale tests first sign-in {uuid.uuid4().hex}\n"
    )
    deployed = Stack(project, env_file, f"http://127.0.0.1:{port}")
    try:
        deployed.compose("build", "app")
        deployed.start()
        token = deployed.cli("tokens", "create", "admin", "--label", "scale-tests").strip()
        deployed.admin.headers["Authorization"] = f"Bearer {token}"
        yield deployed
    finally:
        deployed.compose("down", "-v", "--remove-orphans", check=False)
        for image in [*images.values(), f"healthcare:{project}"]:
            docker("image", "rm", "-f", image, check=False)


def test_migrations_ran_once_and_every_replica_serves(stack: Stack) -> None:
    migrate = stack.compose("ps", "-a", "--format", "json", "migrate").stdout
    assert '"ExitCode":0' in migrate.replace(" ", "")
    assert len(stack.replicas()) == REPLICAS
    ready = stack.admin.get(f"{stack.url}/readyz", timeout=10).json()
    assert ready["database"] == "postgresql"


def test_metrics_add_up_across_replicas(stack: Stack) -> None:
    """Each replica counts what it answered; the sum over replicas is what was sent."""

    def reads_counted() -> float:
        metrics = (
            "import sys, urllib.request as u; r = u.Request('http://127.0.0.1:9000/metrics',"
            " headers={'Authorization': sys.argv[1]}); print(u.urlopen(r).read().decode())"
        )
        total = 0.0
        for replica in stack.replicas():
            text = docker("exec", replica, "python3", "-c", metrics,
                          stack.admin.headers["Authorization"]).stdout  # fmt: skip
            total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                         if line.startswith("healthcare_requests_total{")
                         and 'route="/patients/<int:patient_id>"' in line)  # fmt: skip
        return total

    patient = stack.admin.post(f"{stack.url}/patients", json={"name": "Counted", "age": 30},
                               timeout=10).json()  # fmt: skip
    before = reads_counted()
    answers = [stack.admin.get(f"{stack.url}/patients/{patient['id']}", timeout=10)
               for _ in range(9 * REPLICAS)]  # fmt: skip
    assert {a.status_code for a in answers} == {200}
    assert len({Stack.replica_of(a) for a in answers}) == REPLICAS
    assert reads_counted() == before + 9 * REPLICAS


def _sign_in(url: str, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    browser = requests.Session()
    page = browser.get(f"{url}/login", timeout=10)
    form = {"username": username, "password": password,
            "csrf_token": CSRF.search(page.text).group(1)}  # fmt: skip
    return browser, browser.post(f"{url}/login", data=form, allow_redirects=False, timeout=10)


def _new_user(stack: Stack, role: str = "clinician") -> tuple[str, str]:
    username, password = f"u{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
    made = stack.admin.post(f"{stack.url}/users", json={"username": username, "role": role,
                            "password": password}, timeout=10)  # fmt: skip
    assert made.status_code == 201, made.text
    return username, password


def test_a_session_from_one_replica_works_on_every_other(stack: Stack) -> None:
    username, password = _new_user(stack)
    browser, signed_in = _sign_in(stack.url, username, password)
    assert signed_in.status_code == 303
    answers = [browser.get(f"{stack.url}/me", timeout=10) for _ in range(6 * REPLICAS)]
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["username"] for a in answers} == {username}
    assert len({Stack.replica_of(a) for a in answers}) == REPLICAS


def _refused_everywhere_within_bound(
    stack: Stack, act: Callable[[], None], ask: Callable[[], requests.Response]
) -> None:
    """After ``act``, once the bound has passed, every replica refuses (401)."""
    act()
    acted = time.monotonic()
    while time.monotonic() - acted < REVOCATION_BOUND_SECONDS:
        ask()  # answers inside the bound may still be 200: that is what the bound allows
    after = [ask() for _ in range(6 * REPLICAS)]
    assert {a.status_code for a in after} == {401}
    assert len({Stack.replica_of(a) for a in after}) == REPLICAS


def test_a_revoked_token_is_refused_by_every_replica(stack: Stack) -> None:
    username, _ = _new_user(stack)
    made = stack.admin.post(f"{stack.url}/tokens", json={"username": username,
                            "label": "to revoke"}, timeout=10).json()  # fmt: skip
    client = requests.Session()
    client.headers["Authorization"] = f"Bearer {made['token']}"
    before = [client.get(f"{stack.url}/me", timeout=10) for _ in range(3 * REPLICAS)]
    assert {b.status_code for b in before} == {200}

    _refused_everywhere_within_bound(
        stack,
        lambda: stack.admin.delete(f"{stack.url}/tokens/{made['id']}", timeout=10),
        lambda: client.get(f"{stack.url}/me", timeout=10),
    )


def test_a_disabled_user_is_refused_by_every_replica(stack: Stack) -> None:
    username, password = _new_user(stack)
    browser, _ = _sign_in(stack.url, username, password)
    assert browser.get(f"{stack.url}/me", timeout=10).status_code == 200

    _refused_everywhere_within_bound(
        stack,
        lambda: stack.admin.post(f"{stack.url}/users/{username}/disable", timeout=10),
        lambda: browser.get(f"{stack.url}/me", timeout=10),
    )


def test_sign_in_failures_count_across_replicas(stack: Stack) -> None:
    username, password = _new_user(stack)
    failures = [_sign_in(stack.url, username, "wrong password")[1] for _ in range(5)]
    assert {f.status_code for f in failures} == {401}
    assert len({Stack.replica_of(f) for f in failures}) > 1
    # the sixth try, even with the right password, is refused by whichever replica takes it
    refused = [_sign_in(stack.url, username, password)[1] for _ in range(REPLICAS)]
    assert {r.status_code for r in refused} == {429}


@dataclass
class Tally:
    """What a mixed load saw: writes answered 2xx, failures by method."""

    created: list[str] = field(default_factory=list)
    edited: dict[int, int] = field(default_factory=dict)
    uncertain: set[int] = field(default_factory=set)  # an edit failed: it may or may not be in
    failed: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)  # (method, status or error) for the log
    answered: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, response: requests.Response | Exception) -> bool:
        ok = isinstance(response, requests.Response) and response.status_code < 400
        with self.lock:
            (self.answered if ok else self.failed)[method] += 1
            if not ok:
                why = (
                    getattr(response, "status_code", None)
                    or f"{type(response).__name__}: {response}"
                )
                self.failures[method, why] += 1
        return ok


def _client(stack: Stack, prefix: str, tally: Tally, stop: threading.Event, budget: int) -> None:
    """One of the 32 clients: creates, edits, reads, listings, audit pages, until told to stop
    or its request budget is spent."""
    http = requests.Session()
    http.headers.update(stack.admin.headers)
    # A connection per request: a kept-alive connection that the proxy closes as the next
    # request is sent fails that request without any server having seen it (twice here under
    # load, with nothing in HAProxy's log); that race is the client's to retry, and not what
    # these tests are about. A request that a replica or the proxy drops still fails.
    http.headers["Connection"] = "close"
    mine: list[dict] = []
    rng = random.Random()

    def send(method: str, path: str, **kwargs: object) -> requests.Response | None:
        try:
            response: requests.Response | Exception = http.request(
                method, stack.url + path, timeout=60, **kwargs
            )
        except requests.RequestException as exc:
            response = exc
        return response if tally.record(method, response) else None  # type: ignore[return-value]

    for n in range(budget):
        if stop.is_set():
            return
        roll = rng.random()
        if roll < 0.25 or not mine:
            name = f"{prefix} {threading.get_ident()}-{n}"
            made = send("POST", "/patients", json={"name": name, "age": 40})
            if made is not None:
                mine.append(made.json())
                with tally.lock:
                    tally.created.append(name)
        elif roll < 0.4:
            patient = rng.choice(mine)
            edited = send("PATCH", f"/patients/{patient['id']}", json={"age": rng.randint(1, 99)})
            with tally.lock:
                if edited is None:
                    tally.uncertain.add(patient["id"])
                else:
                    patient.update(edited.json())
                    tally.edited[patient["id"]] = edited.json()["age"]
        elif roll < 0.7:
            send("GET", f"/patients/{rng.choice(mine)['id']}")
        elif roll < 0.9:
            send("GET", "/patients", params={"limit": 20, "offset": rng.randint(0, 200)})
        else:
            send("GET", "/audit", params={"limit": 50})


def _under_load(stack: Stack, prefix: str, faults: Callable[[Tally], None]) -> Tally:
    tally, stop = Tally(), threading.Event()
    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = [pool.submit(_client, stack, prefix, tally, stop, 2000) for _ in range(CLIENTS)]
        started = time.monotonic()
        try:
            faults(tally)
            while time.monotonic() - started < LOAD_SECONDS and not all(c.done() for c in clients):
                time.sleep(0.5)
        finally:
            stop.set()
        for c in clients:
            c.result(timeout=120)
    return tally


def _answers_grow(tally: Tally, by: int, timeout: float = 60) -> None:
    """Wait until the load has had ``by`` more answers (it reaches every replica, or goes on)."""
    target = sum(tally.answered.values()) + by
    deadline = time.monotonic() + timeout
    while sum(tally.answered.values()) < target:
        assert time.monotonic() < deadline, f"the load stalled at {dict(tally.answered)}"
        time.sleep(0.1)


def _stored_ages(stack: Stack, ids: list[int]) -> dict[int, int]:
    return {i: stack.admin.get(f"{stack.url}/patients/{i}", timeout=30).json()["age"] for i in ids}


def _audit_intact(stack: Stack) -> None:
    assert "audit trail intact" in stack.cli("audit", "verify")


def test_kill_one_replica_and_stop_another_under_load(stack: Stack) -> None:
    victims = stack.replicas()[:2]

    def faults(tally: Tally) -> None:
        _answers_grow(tally, 300)
        # as a crash would: the restart policy then brings the replica back
        os.kill(json.loads(docker("inspect", victims[0]).stdout)[0]["State"]["Pid"], SIGKILL)
        _answers_grow(tally, 300)
        docker("stop", "--time", "30", victims[1])

    tally = _under_load(stack, "Faults", faults)
    print(f"\nanswered {dict(tally.answered)}, failed {dict(tally.failures)}")
    assert sum(tally.answered.values()) > 500
    # Reads are retried on another replica: none fails. A write fails only if it was in
    # flight on the killed replica: at most one per client.
    assert tally.failed["GET"] == 0, stack.trouble(tally)
    assert tally.failed["POST"] + tally.failed["PATCH"] <= CLIENTS, stack.trouble(tally)
    assert set(tally.created) <= stack.patients_named("Faults")
    certain = {i: age for i, age in tally.edited.items() if i not in tally.uncertain}
    assert _stored_ages(stack, list(certain)) == certain
    _audit_intact(stack)
    docker("start", victims[1])
    stack.served_by(REPLICAS)  # the crashed replica came back by itself, the stopped one by hand


def test_rolling_update_under_load_fails_no_request(stack: Stack) -> None:
    script = ROOT / "deploy" / "compose" / "rolling-update.sh"

    def roll(tally: Tally) -> None:
        _answers_grow(tally, 300)
        done = subprocess.run([str(script), *stack.files()], capture_output=True, text=True,
                              timeout=600, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    before = set(stack.replicas())
    tally = _under_load(stack, "Rolling", roll)
    print(f"\nanswered {dict(tally.answered)}, failed {dict(tally.failures)}")
    assert not before & set(stack.replicas()), "every replica was replaced"
    assert sum(tally.failed.values()) == 0, stack.trouble(tally)
    assert set(tally.created) <= stack.patients_named("Rolling")
    _audit_intact(stack)
