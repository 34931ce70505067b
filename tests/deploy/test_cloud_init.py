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
    "data_volume_id": "vol-0123456789abcdef0",
    "data_mount": "/var/lib/docker/volumes/healthcare_data/_data",
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
    # The secret key's secret is empty until the first put; the database's is made by RDS.
    "aws": 'case "$*" in *rds!db*) echo \'{"username": "healthcare", "password": "p@ss/w:rd"}\' ;; '
    "*put-secret-value*) touch /secret-stored ;; "
    "*) [ -f /secret-stored ] || exit 254; echo generated-secret-from-ssm-0123456789 ;; esac",
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


def _run_twice(tmp_path: Path, values: dict[str, str]) -> str:
    """The rendered bootstrap run twice in a container with stub commands; what it left."""
    base = os.environ.get(BASE_IMAGE_ENV)
    if not base:
        missing(f"{BASE_IMAGE_ENV} is not set (./run test builds a local stand-in)")
    if docker("info", check=False, timeout=30).returncode != 0:
        missing("no Docker engine answers")
    (tmp_path / "bootstrap.sh").write_text(render(TEMPLATE.read_text(), values))
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, body in STUBS.items():
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> /stub.log\n{body}\n')
        stub.chmod(0o755)
    device = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"
    run_twice = (
        f"mkdir -p /dev/disk/by-id /etc/systemd/system && touch {device} && "
        "bash /work/bootstrap.sh > /first.out 2>&1 && bash /work/bootstrap.sh > /second.out 2>&1 "
        "&& cat /stub.log && echo '--- fstab' && cat /etc/fstab && echo '--- env' "
        "&& stat -c '%a' /opt/healthcare/.env && cat /opt/healthcare/.env "
        "&& echo '--- mount' && (stat -c '%u %a' " + values["data_mount"] + " || true) "
        "&& echo '--- timer' && (cat /etc/systemd/system/healthcare-refresh-env.timer || true) "
        f"&& echo '--- agent' && (cat {AGENT}/etc/healthcare-audit-checkpoints.json || true)"
    )
    result = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{tmp_path}:/work:ro", "-e",
         "PATH=/work/stubs:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "--entrypoint", "bash", base, "-c", run_twice],
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
    assert sum("put-secret-value" in call for call in calls) == 1, "secret key stored twice"
    starts = [c for c in calls if "compose --project-directory /opt/healthcare" in c]
    assert len(starts) == 2
    assert all("up -d" in c and "--profile tls" not in c for c in starts)
    assert fstab.count("UUID=1111-2222") == 1
    assert env.splitlines()[0] == "600"
    assert "HEALTHCARE_SECRET_KEY=generated-secret-from-ssm-0123456789" in env
    assert "HEALTHCARE_BIND=0.0.0.0" in env
    assert "HEALTHCARE_TRUSTED_PROXIES=0" in env  # no proxy without a domain: believe no header
    assert mount.split() == ["10001", "700"]
    assert "HEALTHCARE_DATABASE_URL=\n" in env  # SQLite on the data volume
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
    assert sum("put-secret-value --region" in c for c in log.splitlines()) == 1
    assert "--client-request-token" in log
    assert env.splitlines()[0] == "600"
    assert (
        "HEALTHCARE_DATABASE_URL=postgresql+psycopg://healthcare:p%40ss%2Fw%3Ard@"
        "db.example.eu-west-1.rds.amazonaws.com:5432/healthcare?sslmode=require"
    ) in env
    assert "HEALTHCARE_TRUSTED_PROXIES=1" in env
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
