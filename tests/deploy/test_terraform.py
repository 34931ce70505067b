"""The AWS configurations (single instance, high availability in deploy/aws/ha, and the modules
both use in deploy/aws/modules): formatted, valid, and their offline `terraform test` suites
pass.

Needs the terraform binary and a local mirror of the hashicorp/aws provider (no registry is
reachable here): HEALTHCARE_TF_PLUGIN_DIR, else /opt/tf-plugins. Skipped with that reason where
they are missing, except in CI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "deploy" / "aws"
SHARED = sorted(f"modules/{path.name}" for path in (MODULE / "modules").iterdir() if path.is_dir())


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module", params=[".", "ha", *SHARED], ids=["single", "ha", *SHARED])
def module_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("terraform"):
        _missing("terraform is not installed")
    plugins = Path(os.environ.get("HEALTHCARE_TF_PLUGIN_DIR", "/opt/tf-plugins"))
    if not (plugins / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        _missing(f"no hashicorp/aws provider mirror in {plugins} (set HEALTHCARE_TF_PLUGIN_DIR)")
    work = tmp_path_factory.mktemp("terraform") / "aws"
    shutil.copytree(MODULE, work, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    work = work / request.param  # the roots use the modules beside them
    init = _terraform(work, "init", "-backend=false", f"-plugin-dir={plugins}")
    assert init.returncode == 0, init.stdout + init.stderr
    return work


def _terraform(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["terraform", *args, "-no-color"], cwd=workdir, capture_output=True, text=True,
        timeout=600, check=False, env={**os.environ, "TF_IN_AUTOMATION": "1"},
    )  # fmt: skip


def test_formatted(module_dir: Path) -> None:
    result = _terraform(module_dir, "fmt", "-check", "-recursive")
    assert result.returncode == 0, f"run `terraform fmt -recursive deploy/aws`:\n{result.stdout}"


def test_valid(module_dir: Path) -> None:
    result = _terraform(module_dir, "validate")
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_test_suite_passes(module_dir: Path) -> None:
    result = _terraform(module_dir, "test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout


# What would put a secret's value into the state (and so within reach of an output): a secret
# version or SSM parameter Terraform writes, a secret it reads back, a key or password it makes.
SECRET_VALUE_HOLDERS = re.compile(
    r'^\s*(?:resource\s+"(?:aws_secretsmanager_secret_version|aws_ssm_parameter|random_\w+|'
    r'tls_private_key|aws_iam_access_key)"|data\s+"aws_secretsmanager_(?:secret_version|random_'
    r'password)")',
    re.MULTILINE,
)


def test_no_secret_value_is_in_the_terraform_state() -> None:
    """Terraform makes the secrets (the secret key, the audit key) empty and the servers fill
    them in; RDS keeps the database's password. No resource or data source that holds a
    secret's value is declared, so neither the state nor any output can hold one."""
    sources = sorted(MODULE.glob("**/*.tf"))
    assert len(sources) > 10
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for path in sources
        for match in SECRET_VALUE_HOLDERS.finditer(path.read_text())
    ]
    assert not found
    assert SECRET_VALUE_HOLDERS.search('resource "aws_secretsmanager_secret_version" "key" {')
    assert SECRET_VALUE_HOLDERS.search('data "aws_secretsmanager_secret_version" "key" {')
    assert not SECRET_VALUE_HOLDERS.search('resource "aws_secretsmanager_secret" "audit_key" {')
