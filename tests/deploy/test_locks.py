"""Everything is installed from hash-locked files: the image, CI and development alike, so a
package index that serves different bytes under a pinned version is refused."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
LOCKS = ("runtime.lock", "dev.lock", "checkov.lock")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _name(requirement: str) -> str:
    """The normalised project name (PEP 503) of a requirement."""
    name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked(lock: str) -> dict[str, list[str]]:
    """Each pinned package of a lock file with the --hash options that follow it."""
    entries: dict[str, list[str]] = {}
    current = None
    for line in (REQUIREMENTS / lock).read_text().splitlines():
        stripped = line.strip()
        if match := PIN.match(stripped):
            current = f"{_name(match.group(1))}=={match.group(2)}"
            entries[current] = []
        elif stripped.startswith("--hash=sha256:") and current:
            entries[current].append(stripped.split(":", 1)[1].split()[0])
        elif stripped and not stripped.startswith("#"):
            current = None
    return entries


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_has_a_hash(lock: str) -> None:
    entries = _locked(lock)
    assert entries, f"{lock} names no packages"
    unhashed = [pin for pin, hashes in entries.items() if not hashes]
    assert unhashed == []


@pytest.mark.parametrize("lock", ["runtime.lock", "dev.lock"])
def test_the_locks_agree_with_the_pins(lock: str) -> None:
    """A pin changed in constraints.txt without `./run lock` fails here."""
    pins = {}
    for line in (REQUIREMENTS / "constraints.txt").read_text().splitlines():
        if match := PIN.match(line.strip()):
            pins[_name(match.group(1))] = match.group(2)
    locked = dict(pin.split("==") for pin in _locked(lock))
    drifted = {name: (pins[name], version) for name, version in locked.items()
               if name in pins and pins[name] != version}  # fmt: skip
    assert drifted == {}


def test_the_locks_hold_every_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {pin.split("==")[0] for pin in _locked("runtime.lock")}
    dev = {pin.split("==")[0] for pin in _locked("dev.lock")}
    assert {_name(r) for r in project["dependencies"]} <= runtime
    assert {_name(r) for r in project["optional-dependencies"]["dev"]} <= dev


def test_installs_require_the_hashes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/runtime.lock" in dockerfile
    run = (ROOT / "run").read_text()
    assert "--require-hashes -r requirements/dev.lock" in run
    assert "--require-hashes -r requirements/checkov.lock" in run
