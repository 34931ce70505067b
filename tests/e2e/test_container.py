"""The production image and compose deployment against a real Docker engine.

Needs a reachable engine, Compose v2 and a base image (HEALTHCARE_TEST_BASE_IMAGE: the local
stand-in that `./run test` builds with debootstrap, since no registry is reachable here).
Skipped with that reason where they are missing, except in CI, where that is a failure."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import wait_until
from tests.e2e.conftest import docker, free_port, missing, write_burst_then

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE_ENV = "HEALTHCARE_TEST_BASE_IMAGE"
LAYER_BUDGET_BYTES = 60 * 1000 * 1000  # README, "In a container"

pytestmark = pytest.mark.slow


@dataclass
class Deployment:
    project: str
    env_file: Path
    url: str
    image: str
    base_image: str
    http: requests.Session = field(default_factory=requests.Session)

    def sign_in_with_a_new_token(self) -> None:
        """An API token for the first-run admin, made the way an operator makes one."""
        made = self.compose("exec", "-T", "app", "healthcare", "tokens", "create", "admin",
                            "--label", f"tests-{uuid.uuid4().hex[:8]}")  # fmt: skip
        self.http.headers["Authorization"] = f"Bearer {made.stdout.strip()}"
        # The generated first password must be changed before the token may do anything else.
        first = self.compose("exec", "-T", "app", "cat", "/data/first-admin-password",
                             check=False).stdout.strip()  # fmt: skip
        if first:
            change = {"current_password": first, "new_password": f"new {uuid.uuid4().hex}"}
            changed = self.http.post(f"{self.url}/me/password", json=change, timeout=10)
            assert changed.status_code == 204, changed.text
            self.compose("exec", "-T", "app", "rm", "/data/first-admin-password")

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return docker("compose", "--project-directory", str(ROOT), "-p", self.project,
                       "--env-file", str(self.env_file), *args, check=check)  # fmt: skip

    @property
    def container(self) -> str:
        return self.compose("ps", "-q", "app").stdout.strip()

    def inspect(self) -> dict[str, Any]:
        return json.loads(docker("inspect", self.container).stdout)[0]

    def state(self) -> dict[str, Any]:
        return self.inspect()["State"]

    def wait_healthy(self, timeout: float = 90, *, started_after: str | None = None) -> None:
        """Until the app reports healthy; with ``started_after`` (a ``StartedAt`` read before a
        kill), only a container started since counts, not the health reported before it died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.container:
                state = self.state()
                healthy = state.get("Health", {}).get("Status") == "healthy"
                if healthy and state["StartedAt"] != started_after:
                    return
            time.sleep(1)
        logs = self.compose("logs", "app", check=False).stdout[-3000:]
        raise AssertionError(f"app did not become healthy:\n{logs}")

    def post(self, name: str) -> requests.Response:
        return self.http.post(f"{self.url}/patients", json={"name": name, "age": 33}, timeout=10)

    def names(self) -> list[str]:
        names: list[str] = []
        while True:
            page = self.http.get(
                f"{self.url}/patients", params={"limit": 500, "offset": len(names)}, timeout=10
            ).json()
            names += [p["name"] for p in page["items"]]
            if len(names) >= page["total"] or not page["items"]:
                return sorted(names)


def compose_base_image() -> str:
    """The base image to build on, once an engine and Compose v2 are known to answer."""
    if not shutil.which("docker"):
        missing("no docker client")
    if docker("info", check=False, timeout=30).returncode != 0:
        missing("no Docker engine answers (start dockerd)")
    if docker("compose", "version", check=False).returncode != 0:
        missing("Docker Compose v2 is not installed")
    base_image = os.environ.get(BASE_IMAGE_ENV)
    if not base_image:
        missing(f"{BASE_IMAGE_ENV} is not set (./run test builds a local stand-in)")
    return base_image


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    base_image = compose_base_image()
    project = f"hctest{uuid.uuid4().hex[:8]}"
    port = free_port()
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    env_file.write_text(
        f"HEALTHCARE_SECRET_KEY={uuid.uuid4().hex}{uuid.uuid4().hex}\n"
        f"PYTHON_IMAGE={base_image}\nHEALTHCARE_PORT={port}\n"
        f"HEALTHCARE_IMAGE_TAG={project}\n"
    )
    deployed = Deployment(project, env_file, f"http://127.0.0.1:{port}",
                          f"healthcare:{project}", base_image)  # fmt: skip
    deployed.compose("build")
    deployed.compose("up", "-d")
    try:
        deployed.wait_healthy()
        deployed.sign_in_with_a_new_token()
        yield deployed
    finally:
        deployed.compose("down", "-v", "--remove-orphans", check=False)
        docker("image", "rm", "-f", deployed.image, check=False)


def test_image_runs_as_non_root_within_its_size_budget(deployment: Deployment) -> None:
    user = docker("run", "--rm", "--entrypoint", "id", deployment.image).stdout
    assert "uid=10001" in user
    inspect = json.loads(docker("image", "inspect", deployment.image).stdout)[0]
    assert inspect["Config"]["User"] == "10001:10001"
    base = json.loads(docker("image", "inspect", deployment.base_image).stdout)[0]
    added = inspect["Size"] - base["Size"]
    budget = LAYER_BUDGET_BYTES / 1e6
    print(f"\nimage layers added on top of the base: {added / 1e6:.1f} MB (budget {budget:.0f} MB)")
    assert added < LAYER_BUDGET_BYTES
    assert not docker("run", "--rm", "--entrypoint", "sh", deployment.image, "-c",
                       "ls /opt/venv/bin/pip /build 2>/dev/null", check=False).stdout  # fmt: skip


def test_first_run_admin_password_is_in_a_file_not_the_log(deployment: Deployment) -> None:
    logs = deployment.compose("logs", "app").stdout
    assert logs.count("first run: created user 'admin'; its password is in /data/") == 1
    assert " with password " not in logs


def test_crud_over_http(deployment: Deployment) -> None:
    assert requests.get(f"{deployment.url}/patients", timeout=10).status_code == 401
    created = deployment.post("Container Crud")
    assert created.status_code == 201
    url = deployment.url + created.headers["Location"]
    http = deployment.http
    assert http.patch(url, json={"age": 34}, timeout=10).json()["version"] == 2
    assert http.delete(url, timeout=10).status_code == 204
    assert http.post(f"{url}/restore", timeout=10).status_code == 200
    assert http.get(url, timeout=10).json()["age"] == 34
    verified = deployment.compose("exec", "-T", "app", "healthcare", "audit", "verify")
    assert "audit trail intact" in verified.stdout


def test_audit_checkpoints_are_written_to_their_own_volume(deployment: Deployment) -> None:
    """The `audit` volume is the app user's (an empty volume takes the image's /audit), so the
    checkpoints land where the AWS bootstrap's CloudWatch agent ships them from."""
    assert deployment.post("Checkpointed").status_code == 201
    deployment.compose("exec", "-T", "app", "healthcare", "audit", "verify")  # ends with one
    written = deployment.compose("exec", "-T", "app", "cat", "/audit/checkpoints.jsonl").stdout
    assert written
    assert all(json.loads(line)["last_id"] > 0 for line in written.splitlines())


def test_fhir_patients_are_validated_inside_the_image(deployment: Deployment) -> None:
    """The image keeps only fhir.resources' R4B models: a Patient is still parsed and served."""
    fhir = {"Content-Type": "application/fhir+json"}
    patient = {"resourceType": "Patient", "name": [{"family": "Imagefhir", "given": ["Ada"]}],
               "gender": "female", "birthDate": "1990-04-01"}  # fmt: skip
    created = deployment.http.post(f"{deployment.url}/fhir/Patient", json=patient, headers=fhir,
                                   timeout=10)  # fmt: skip
    assert created.status_code == 201, created.text
    read = deployment.http.get(deployment.url + "/fhir/Patient/" + created.json()["id"], timeout=10)
    assert read.json()["name"][0]["family"] == "Imagefhir"
    invalid = deployment.http.post(f"{deployment.url}/fhir/Patient", headers=fhir, timeout=10,
                                   json={**patient, "birthDate": "01/04/1990"})  # fmt: skip
    assert invalid.status_code == 400
    assert invalid.json()["resourceType"] == "OperationOutcome"


def test_records_survive_restart_and_recreation(deployment: Deployment) -> None:
    assert deployment.post("Survivor").status_code == 201
    before = deployment.names()
    deployment.compose("restart", "app")
    deployment.wait_healthy()
    assert deployment.names() == before
    deployment.compose("down")
    deployment.compose("up", "-d")
    deployment.wait_healthy()
    assert deployment.names() == before


def test_a_killed_server_is_restarted_with_its_data(deployment: Deployment) -> None:
    assert deployment.post("Before the crash").status_code == 201
    before = deployment.names()
    state = deployment.state()
    os.kill(state["Pid"], signal.SIGKILL)
    deployment.wait_healthy(started_after=state["StartedAt"])
    assert deployment.inspect()["RestartCount"] >= 1
    assert deployment.names() == before


def test_stop_during_a_write_burst_keeps_every_acknowledged_write(
    deployment: Deployment,
) -> None:
    acknowledged = [
        patient["name"]
        for patient in write_burst_then(
            deployment.url, lambda: deployment.compose("stop", "app"), deployment.http
        )
    ]
    assert acknowledged
    deployment.compose("start", "app")
    deployment.wait_healthy()
    stored = set(deployment.names())
    assert set(acknowledged) <= stored


def test_backup_while_writing_restores_into_a_fresh_volume(deployment: Deployment) -> None:
    stop = threading.Event()
    acknowledged: list[float] = []

    def write_until_stopped(worker: int) -> None:
        for i in range(2_000):  # bounded, and stopped as soon as the backup is done
            if stop.is_set():
                return
            if deployment.post(f"Backup burst {worker}-{i}").status_code == 201:
                acknowledged.append(time.monotonic())

    with ThreadPoolExecutor(4) as pool:
        writers = [pool.submit(write_until_stopped, worker) for worker in range(4)]
        wait_until(lambda: len(acknowledged) >= 20, timeout=60, what="writes before the backup")
        started, before = time.monotonic(), len(acknowledged)
        made = deployment.compose("exec", "-T", "app", "healthcare", "backup", "/backups")
        ended = time.monotonic()
        stop.set()
        for writer in writers:
            writer.result()
    during = [at for at in acknowledged if started < at < ended]
    assert during, "no write was acknowledged while the backup ran"
    path = made.stdout.split("backup written: ")[1].strip()
    fresh = f"{deployment.project}_fresh"
    count = ("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
             "print(c.execute('select count(*), group_concat(name) from "
             "(select name from patients order by id)').fetchone())")  # fmt: skip
    volumes = ["-v", f"{fresh}:/data", "-v", f"{deployment.project}_backups:/backups"]
    try:
        # As the README's restore drill: the restored trail is checked with the audit key.
        key = deployment.compose("exec", "-T", "app", "cat", "/data/audit.key").stdout.strip()
        docker("run", "--rm", *volumes, "-e", "HEALTHCARE_SECRET_KEY=" + "k" * 40,
                "-e", f"HEALTHCARE_AUDIT_KEY={key}", deployment.image, "restore", path,
                "--yes")  # fmt: skip
        in_backup = docker("run", "--rm", *volumes, "--entrypoint", "python3",
                            deployment.image, "-c", count, path).stdout  # fmt: skip
        restored = docker("run", "--rm", *volumes, "--entrypoint", "python3",
                           deployment.image, "-c", count, "/data/healthcare.db").stdout  # fmt: skip
    finally:
        docker("volume", "rm", "-f", fresh, check=False)
    assert restored == in_backup
    assert int(restored.strip("()\n").split(",")[0]) >= before


def test_postgres_profile_migrates_once_and_serves(deployment: Deployment, tmp_path: Path) -> None:
    """`--profile postgres`: a PostgreSQL service with its own volume (here a stand-in image
    built from the same base, since the official one cannot be pulled), a one-shot
    migration, and the app on top once both are done."""
    pg_image = f"healthcare-postgres-standin:{deployment.project}"
    build = subprocess.run(
        ["docker", "build", "-q", "--build-arg", f"BASE_IMAGE={deployment.base_image}",
         "-t", pg_image, str(ROOT / "tests" / "e2e" / "postgres_standin")],
        capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"},
        timeout=600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    password, app_password = uuid.uuid4().hex, uuid.uuid4().hex
    port = free_port()
    env_file = tmp_path / ".env"
    env_file.write_text(
        deployment.env_file.read_text()
        + f"HEALTHCARE_PORT={port}\nPOSTGRES_IMAGE={pg_image}\nPOSTGRES_PASSWORD={password}\n"
        f"HEALTHCARE_APP_DB_PASSWORD={app_password}\n"
        f"HEALTHCARE_DATABASE_URL=postgresql+psycopg://healthcare_app:{app_password}"
        "@postgres:5432/healthcare\n"
    )
    stack = Deployment(f"{deployment.project}pg", env_file, f"http://127.0.0.1:{port}",
                       deployment.image, deployment.base_image)  # fmt: skip
    try:
        stack.compose("--profile", "postgres", "up", "-d")
        stack.wait_healthy()
        stack.sign_in_with_a_new_token()
        # The app connects as healthcare_app, the role the migration gave rows-only rights.
        assert requests.get(f"{stack.url}/readyz", timeout=10).json() == {"status": "ok"}
        migrate = stack.compose("--profile", "postgres", "ps", "-a", "--format", "json",
                                "migrate").stdout  # fmt: skip
        assert '"ExitCode":0' in migrate.replace(" ", "")
        created = stack.post("On PostgreSQL")
        assert created.status_code == 201
        assert stack.names() == ["On PostgreSQL"]
        stack.compose("--profile", "postgres", "restart", "app")
        stack.wait_healthy()
        assert stack.names() == ["On PostgreSQL"]
    finally:
        stack.compose("--profile", "postgres", "down", "-v", check=False)
        docker("image", "rm", "-f", pg_image, check=False)


def test_the_aws_instance_data_volume_is_written_and_kept(
    deployment: Deployment, tmp_path: Path
) -> None:
    """As the single AWS instance runs it (deploy/aws/modules/app-server): its bootstrap mounts
    the data volume, a fresh ext4 file system (a root-owned lost+found in it), on a host folder,
    gives that folder to the app's user (10001, 0700) and names it in .env as
    HEALTHCARE_DATA_VOLUME; compose then serves /data from it. Records are written there and
    survive the container's recreation."""
    if os.geteuid() != 0:
        missing("giving the folder to the app's user needs root")
    volume = tmp_path / "data-volume"
    (volume / "lost+found").mkdir(parents=True, mode=0o700)
    os.chown(volume, 10001, 10001)
    volume.chmod(0o700)
    port = free_port()
    env_file = tmp_path / ".env"
    env_file.write_text(
        deployment.env_file.read_text()
        + f"HEALTHCARE_PORT={port}\nHEALTHCARE_DATA_VOLUME={volume}\n"
    )
    stack = Deployment(f"{deployment.project}ec2", env_file, f"http://127.0.0.1:{port}",
                       deployment.image, deployment.base_image)  # fmt: skip
    try:
        stack.compose("up", "-d")
        stack.wait_healthy()
        stack.sign_in_with_a_new_token()
        assert stack.post("On the data volume").status_code == 201
        stack.compose("down")
        stack.compose("up", "-d")
        stack.wait_healthy()
        assert stack.names() == ["On the data volume"]
        assert (volume / "healthcare.db").stat().st_uid == 10001, "not on the data volume"
        assert (volume.stat().st_uid, volume.stat().st_mode & 0o777) == (10001, 0o700)
    finally:
        stack.compose("down", "-v", check=False)
