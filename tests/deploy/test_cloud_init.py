"""The instance bootstrap script, rendered as Terraform renders it and run twice in a container
from the stand-in base with stub commands: a typo fails here, not on a first `apply`, and the
second run must change nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import yaml

from tests.e2e.conftest import docker, missing
from tests.e2e.test_container import BASE_IMAGE_ENV

ROOT = Path(__file__).resolve().parents[2]
APP_SERVER = ROOT / "deploy" / "aws" / "modules" / "app-server"
TEMPLATE = APP_SERVER / "cloud-init.sh.tftpl"
CHECKPOINTS = "/var/lib/docker/volumes/healthcare_audit/_data/checkpoints.jsonl"
AGENT_CONFIG = json.dumps(
    {"agent": {"run_as_user": "root"}, "logs": {"logs_collected": {"files": {"collect_list": [
        {"file_path": CHECKPOINTS, "log_group_name": "/healthcare/audit-checkpoints",
         "log_stream_name": "{instance_id}", "multi_line_start_pattern": "^"}]}}}},
    separators=(",", ":"),
)  # fmt: skip
AGENT = "/opt/aws/amazon-cloudwatch-agent"
VALUES = {
    "repository_url": "https://git.example.org/clinic/healthcare.git",
    "repository_ref": "v0.1.0",
    "region": "eu-west-1",
    "secret_id": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:healthcare/secret-key",
    "audit_key_id": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:healthcare/audit-key",
    "data_volume_id": "vol-0123456789abcdef0",
    "data_mount": "/srv/healthcare/data",
    "app_port": "9000",
    "bind_address": "0.0.0.0",  # noqa: S104 - the rendered script's value, nothing binds here
    "domain_name": "",
    "trusted_proxies": "0",
    "database_secret_arn": "",
    "database_endpoint": "",
    "audit_agent_config": AGENT_CONFIG,
}
STUBS = {
    # Every stub appends its command line to /stub.log; some also leave what the real one would.
    "dnf": f'case "$*" in *amazon-cloudwatch-agent*) mkdir -p {AGENT}/bin; '
    f"printf '#!/bin/sh\\necho \"amazon-cloudwatch-agent-ctl $*\" >> /stub.log\\n' "
    f"> {AGENT}/bin/amazon-cloudwatch-agent-ctl; chmod 0755 {AGENT}/bin/*;; esac",
    "systemctl": "",
    "curl": 'out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done; '
    '[ -n "$out" ] && echo "#!/bin/sh" > "$out"',
    "blkid": '[ -f /fake-fs ] || exit 2; [ "$1" = -s ] && echo 1111-2222; exit 0',
    "mkfs.ext4": "touch /fake-fs",
    "mountpoint": "[ -f /fake-mounted ]",
    "mount": "touch /fake-mounted",
    "git": 'if [ "$1" = clone ]; then mkdir -p "$3/.git"; fi',
    # Secrets Manager, in /secrets (shared by the servers of one test): Terraform's secrets are
    # empty until the first put, whose value stays (another value under the same request token
    # is refused, as AWS does); the database's is made by RDS. STALE_FIRST_READ: this server's
    # first read of each secret finds it empty, as when another server stores it meanwhile.
    "aws": 'case "$*" in *rds!db*) echo \'{"username": "healthcare", "password": "p@ss/w:rd"}\'; '
    "exit 0 ;; esac; op=$2; while [ $# -gt 0 ]; do case $1 in --secret-id) id=$2 ;; "
    "--secret-string) value=$2 ;; esac; shift; done; "
    'file=/secrets/$(echo "${id##*:}" | tr / _); '
    'if [ "$op" = get-secret-value ]; then '
    'if [ -n "$STALE_FIRST_READ" ] && [ ! -e "$file.read" ]; then touch "$file.read"; '
    "exit 254; fi; "
    '[ -f "$file" ] || exit 254; cat "$file"; '
    'elif [ -f "$file" ]; then [ "$(cat "$file")" = "$value" ] || exit 254; '
    'else echo "$value" > "$file"; fi',
    "docker": "",
}


def render(template: str, values: dict[str, str]) -> str:
    """templatefile() for this template: ${name} interpolation and $${ escapes, nothing else."""
    names = set(re.findall(r"(?<!\$)\$\{([^}]*)\}", template))
    assert names <= set(values), f"unknown template variables: {names - set(values)}"
    assert "%{" not in template, "template directives are not rendered by this test"
    rendered = re.sub(r"(?<!\$)\$\{([a-z_]+)\}", lambda m: values[m.group(1)], template)
    return rendered.replace("$${", "${")


def test_render_leaves_no_template_syntax() -> None:
    script = render(TEMPLATE.read_text(), VALUES)
    assert "REPOSITORY_URL='https://git.example.org/clinic/healthcare.git'" in script
    assert "${DATA_VOLUME_ID//-/}" in script
    assert "$${" not in script


def _run_twice(
    tmp_path: Path,
    values: dict[str, str],
    *,
    secrets: Path | None = None,
    before: str = "true",
    env: tuple[str, ...] = (),
) -> str:
    """The rendered bootstrap run twice in a container with stub commands; what it left.
    ``secrets``: the fake Secrets Manager's folder (shared by the servers of a deployment);
    ``before``: a command that prepares the server; ``env``: NAME=VALUE for the stubs."""
    base = os.environ.get(BASE_IMAGE_ENV)
    if not base:
        missing(f"{BASE_IMAGE_ENV} is not set (./run test builds a local stand-in)")
    if docker("info", check=False, timeout=30).returncode != 0:
        missing("no Docker engine answers")
    (tmp_path / "bootstrap.sh").write_text(render(TEMPLATE.read_text(), values))
    if secrets is None:
        secrets = tmp_path / "secrets"
        secrets.mkdir()
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, body in STUBS.items():
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> /stub.log\n{body}\n')
        stub.chmod(0o755)
    device = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"
    run_twice = (
        f"mkdir -p /dev/disk/by-id /etc/systemd/system && touch {device} && {before} && "
        "bash /work/bootstrap.sh > /first.out 2>&1 && bash /work/bootstrap.sh > /second.out 2>&1 "
        "&& cat /stub.log && echo '--- fstab' && cat /etc/fstab && echo '--- env' "
        "&& stat -c '%a' /opt/healthcare/.env && cat /opt/healthcare/.env "
        "&& echo '--- mount' && (stat -c '%u %a' " + values["data_mount"] + " || true) "
        "&& echo '--- timer' && (cat /etc/systemd/system/healthcare-refresh-env.timer || true) "
        f"&& echo '--- agent' && (cat {AGENT}/etc/healthcare-audit-checkpoints.json || true)"
    )
    result = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{tmp_path}:/work:ro", "-v", f"{secrets}:/secrets",
         "-e", "PATH=/work/stubs:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         *(arg for name in env for arg in ("-e", name)), "--entrypoint", "bash", base, "-c",
         run_twice],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_bootstrap_runs_and_is_harmless_the_second_time(tmp_path: Path) -> None:
    stdout = _run_twice(tmp_path, VALUES)
    log, rest = stdout.split("--- fstab\n")
    fstab, rest = rest.split("--- env\n")
    env, rest = rest.split("--- mount\n")
    mount, rest = rest.split("--- timer\n")
    timer, agent = rest.split("--- agent\n")
    calls = log.splitlines()
    assert sum(call.startswith("mkfs.ext4") for call in calls) == 1, "formatted twice"
    assert sum(call.startswith("git clone") for call in calls) == 1, "cloned twice"
    assert sum(call.startswith("curl") for call in calls) == 1, "compose fetched twice"
    stored = [call for call in calls if "put-secret-value" in call]
    assert len(stored) == 2, "each key stored once"
    assert "--secret-id " + VALUES["secret_id"] in stored[0]
    assert "--secret-id " + VALUES["audit_key_id"] in stored[1]
    starts = [c for c in calls if "compose --project-directory /opt/healthcare" in c]
    assert len(starts) == 2
    assert all("up -d" in c and "--profile tls" not in c for c in starts)
    assert fstab.count("UUID=1111-2222") == 1
    assert env.splitlines()[0] == "600"
    keys = dict(line.split("=", 1) for line in env.splitlines()[1:])
    assert len(keys["HEALTHCARE_SECRET_KEY"]) >= 32
    assert len(keys["HEALTHCARE_AUDIT_KEY"]) >= 32  # the app's minimum
    assert keys["HEALTHCARE_AUDIT_KEY"] != keys["HEALTHCARE_SECRET_KEY"]
    assert "HEALTHCARE_BIND=0.0.0.0" in env
    assert "HEALTHCARE_TRUSTED_PROXIES=0" in env  # no proxy without a domain: believe no header
    assert mount.split() == ["10001", "700"]
    assert "HEALTHCARE_DATABASE_URL=\n" in env  # SQLite on the data volume
    assert "HEALTHCARE_DATA_VOLUME=/srv/healthcare/data\n" in env  # compose's /data is that folder
    assert timer == "", "no password to refresh in single-instance mode"
    assert sum("install -y amazon-cloudwatch-agent" in call for call in calls) == 1
    configured = [c for c in calls if c.startswith("amazon-cloudwatch-agent-ctl -a fetch-config")]
    assert configured == [
        f"amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c "
        f"file:{AGENT}/etc/healthcare-audit-checkpoints.json"
    ], "the agent is configured once, before the app starts"
    assert calls.index(configured[0]) < calls.index(starts[0])
    assert json.loads(agent) == json.loads(AGENT_CONFIG)


def test_high_availability_bootstrap_uses_rds_and_no_data_volume(tmp_path: Path) -> None:
    values = {
        **VALUES,
        "data_volume_id": "",
        "trusted_proxies": "1",
        "database_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1",
        "database_endpoint": "db.example.eu-west-1.rds.amazonaws.com:5432",
        "audit_agent_config": "",
    }
    stdout = _run_twice(tmp_path, values)
    log, rest = stdout.split("--- fstab\n")
    env = rest.split("--- env\n")[1].split("--- mount\n")[0]
    timer, agent = stdout.split("--- timer\n")[1].split("--- agent\n")
    assert "mkfs" not in log, "no data volume in HA mode"
    assert "mount " not in log, "no data volume in HA mode"
    assert sum("put-secret-value --region" in c for c in log.splitlines()) == 2  # both keys
    assert "--client-request-token" in log
    assert env.splitlines()[0] == "600"
    assert (
        "HEALTHCARE_DATABASE_URL=postgresql+psycopg://healthcare:p%40ss%2Fw%3Ard@"
        "db.example.eu-west-1.rds.amazonaws.com:5432/healthcare?sslmode=require"
    ) in env
    assert "HEALTHCARE_TRUSTED_PROXIES=1" in env
    assert "HEALTHCARE_DATA_VOLUME=\n" in env  # compose's own `data` volume
    assert "OnUnitActiveSec=5min" in timer
    assert sum("enable --now healthcare-refresh-env.timer" in c for c in log.splitlines()) == 2
    assert "amazon-cloudwatch-agent" not in log, "checkpoints not shipped: no agent"
    assert agent == ""


def test_the_agent_ships_the_file_the_app_writes_its_checkpoints_to() -> None:
    """The module's host path is compose's `audit` volume of the project the bootstrap starts
    (`healthcare`) plus the app's HEALTHCARE_AUDIT_CHECKPOINTS, and the image makes /audit the
    app user's (an empty volume takes its owner from the image)."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    in_container = Path(compose["services"]["app"]["environment"]["HEALTHCARE_AUDIT_CHECKPOINTS"])
    volumes = dict(reversed(v.split(":")[:2]) for v in compose["services"]["app"]["volumes"])
    folder = volumes[str(in_container.parent)]
    on_host = f"/var/lib/docker/volumes/{compose['name']}_{folder}/_data/{in_container.name}"
    assert on_host == CHECKPOINTS
    assert f'audit_checkpoints = "{CHECKPOINTS}"' in (APP_SERVER / "audit-log.tf").read_text()
    assert f"--project-name {compose['name']}" in TEMPLATE.read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"mkdir -p [^\n]*{in_container.parent}\b", dockerfile)
    assert re.search(rf"chown healthcare:healthcare [^\n]*{in_container.parent}\b", dockerfile)


def _env(stdout: str) -> dict[str, str]:
    """The .env the bootstrap wrote (after its mode line), as a dict."""
    written = stdout.split("--- env\n")[1].split("--- mount\n")[0].splitlines()
    assert written[0] == "600"
    return dict(line.split("=", 1) for line in written[1:])


def test_every_high_availability_server_gets_the_one_audit_key(tmp_path: Path) -> None:
    """Two servers of one deployment, booting together: the second finds each secret empty
    too and tries to store a key of its own, which is refused, then reads the first one's. A
    server with an audit key of its own would refuse every write (the chain is keyed)."""
    values = {
        **VALUES,
        "data_volume_id": "",
        "audit_agent_config": "",
        "database_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1",
        "database_endpoint": "db.example.eu-west-1.rds.amazonaws.com:5432",
    }
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = _run_twice(tmp_path / "first", values, secrets=secrets)
    second = _run_twice(tmp_path / "second", values, secrets=secrets, env=("STALE_FIRST_READ=1",))
    first_env, second_env = _env(first), _env(second)
    assert "HEALTHCARE_AUDIT_KEY" in first_env, "no audit key: each server makes a key file"
    stored = (secrets / "healthcare_audit-key").read_text().strip()
    assert first_env["HEALTHCARE_AUDIT_KEY"] == second_env["HEALTHCARE_AUDIT_KEY"] == stored
    assert first_env["HEALTHCARE_SECRET_KEY"] == second_env["HEALTHCARE_SECRET_KEY"]
    assert len(stored) >= 32
    refused = [call for call in second.split("--- fstab")[0].splitlines() if "put-secret-" in call]
    assert len(refused) == 2, "the second server tried to store keys of its own, and was refused"


def test_a_single_instance_keeps_the_audit_key_file_on_its_data_volume(tmp_path: Path) -> None:
    """Upgrading an instance whose app made its audit key file on the data volume: that key is
    the one stored, so the trail it keyed goes on."""
    made_by_the_app = "0123456789abcdef" * 4
    mount = VALUES["data_mount"]
    stdout = _run_twice(
        tmp_path, VALUES, before=f"mkdir -p {mount} && echo {made_by_the_app} > {mount}/audit.key"
    )
    assert _env(stdout)["HEALTHCARE_AUDIT_KEY"] == made_by_the_app
    assert (tmp_path / "secrets" / "healthcare_audit-key").read_text().strip() == made_by_the_app


def test_an_earlier_bootstrap_s_data_volume_moves_to_the_app_s_folder(tmp_path: Path) -> None:
    """An instance bootstrapped when the data volume was mounted on the compose volume's own
    folder (which Docker gave to root): its fstab entry moves to the folder the app owns."""
    earlier = "UUID=1111-2222 /var/lib/docker/volumes/healthcare_data/_data ext4 defaults 0 2"
    stdout = _run_twice(tmp_path, VALUES, before=f"touch /fake-fs && echo '{earlier}' > /etc/fstab")
    log, rest = stdout.split("--- fstab\n")
    fstab = rest.split("--- env\n")[0]
    assert "mkfs" not in log, "the data volume was formatted again"
    assert fstab.splitlines() == ["UUID=1111-2222 /srv/healthcare/data ext4 defaults,nofail 0 2"]
    assert "mount /srv/healthcare/data" in log.splitlines()
    assert _env(stdout)["HEALTHCARE_DATA_VOLUME"] == "/srv/healthcare/data"
