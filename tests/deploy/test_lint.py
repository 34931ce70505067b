"""The Dockerfile and compose.yaml pass hadolint, checkov and compose-lint; skips carry reasons."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHECKOV_ENV = "HEALTHCARE_CHECKOV"


def _run(*command: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=600, check=False,
    )  # fmt: skip


def _checkov() -> str:
    found = os.environ.get(CHECKOV_ENV) or shutil.which("checkov")
    if found:
        return found
    message = f"checkov not found: set {CHECKOV_ENV} (./run test installs it in .venv-checkov)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def test_hadolint_passes() -> None:
    result = _run(BIN / "hadolint", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_lint_passes_at_medium() -> None:
    result = _run(BIN / "compose-lint", "check", "--strict-config", "--fail-on", "medium",
                  "compose.yaml")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_lint_passes_on_the_scale_deployment(tmp_path: Path) -> None:
    """compose.scale.yaml as it runs: merged over compose.yaml."""
    merged = ROOT / f".scale-merged-{os.getpid()}.yaml"
    env = tmp_path / ".env"
    env.write_text("HEALTHCARE_SECRET_KEY=lint\nPOSTGRES_PASSWORD=lint\n")
    files = ("-f", "compose.yaml", "-f", "compose.scale.yaml", "--profile", "metrics")
    config = _run("docker", "compose", "--project-directory", ROOT, "--env-file", env, *files,
                  "config", "--no-interpolate")  # fmt: skip
    if config.returncode != 0 and "is not a docker command" in config.stderr:
        if os.environ.get("CI"):
            pytest.fail("Docker Compose v2 is not installed")
        pytest.skip("Docker Compose v2 is not installed")
    assert config.returncode == 0, config.stderr
    merged.write_text(config.stdout)
    try:
        result = _run(BIN / "compose-lint", "check", "--strict-config", "--fail-on", "medium",
                      "--config", "deploy/compose/compose-lint-scale.yml", merged.name)  # fmt: skip
    finally:
        merged.unlink()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("framework", "target"),
    [("dockerfile", ["-f", "Dockerfile"]), ("terraform", ["-d", "deploy/aws"])],
)
def test_checkov_passes(framework: str, target: list[str]) -> None:
    result = _run(
        _checkov(), "--skip-download", "--framework", framework, *target, "--compact", "--quiet",
        env={"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout


def test_every_skipped_rule_says_why() -> None:
    sources = [ROOT / "Dockerfile", *sorted((ROOT / "deploy" / "aws").glob("**/*.tf"))]
    skips = [line for path in sources for line in path.read_text().splitlines()
             if "checkov:skip=" in line]  # fmt: skip
    assert skips
    for line in skips:
        assert len(line.split(":", 3)[-1].strip()) > 20, line
    assert "TODO" not in (ROOT / ".compose-lint.yml").read_text()
    assert "TODO" not in (ROOT / "deploy" / "compose" / "compose-lint-scale.yml").read_text()


def test_env_example_documents_every_compose_variable() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    used = {part.split("}")[0].split(":")[0].split("-")[0] for part in compose.split("${")[1:]}
    assert used <= documented, used - documented


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's own tags (``!reset``), which this test does not need the values of."""


_ComposeLoader.add_constructor("!reset", lambda _loader, _node: None)


def test_prometheus_scrapes_every_replica_with_the_token_compose_mounts() -> None:
    """The optional metrics profile: each replica found by Docker's DNS on the app's port, never
    through the balancer, with the admin token file that compose mounts. (Prometheus itself
    cannot run here: no registry for its image. The counters adding up across replicas is
    tests/e2e/test_scale.py::test_metrics_add_up_across_replicas.)"""
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"] == [
        {"names": ["app"], "type": "A", "port": 9000, "refresh_interval": "15s"}
    ]
    scale = yaml.load((ROOT / "compose.scale.yaml").read_text(), _ComposeLoader)  # noqa: S506
    metrics = scale["services"]["metrics"]
    mounted = {next(p for p in v.split(":") if p.startswith("/")) for v in metrics["volumes"]}
    assert job["authorization"]["credentials_file"] in mounted
    assert "/etc/prometheus/prometheus.yml" in mounted
    assert metrics["profiles"] == ["metrics"]
    assert metrics["ports"] == ["127.0.0.1:${PROMETHEUS_PORT:-9090}:9090"]
