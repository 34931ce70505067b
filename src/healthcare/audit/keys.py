"""The audit key: from HEALTHCARE_AUDIT_KEY, or a random key made once in the data folder.

The key is never stored in the database: a copy of the database (a backup, a stolen dump, an
attacker with SQL access) is not enough to re-hash audit rows or forge checkpoints."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import Engine

from healthcare.audit.checkpoints import AppendOnlyFile, Checkpointer
from healthcare.audit.trail import use_key
from healthcare.config import ConfigError, Settings

KEY_FILE = "audit.key"
CHECKPOINT_FILE = "audit-checkpoints.jsonl"
MIN_KEY_CHARACTERS = 32


def audit_key(settings: Settings) -> bytes:
    """The configured key, else the data folder's key file (created 0600 on first use)."""
    key = settings.audit_key.get_secret_value().strip() if settings.audit_key else ""
    if key:
        if len(key) < MIN_KEY_CHARACTERS:
            raise ConfigError(
                f"HEALTHCARE_AUDIT_KEY must have at least {MIN_KEY_CHARACTERS} characters"
            )
        return key.encode()
    return _key_file(settings.data_dir / KEY_FILE)


def _key_file(path: Path) -> bytes:
    """The key in ``path``, made there first if missing. Written whole under another name and
    then linked into place, so that processes starting together all read the same full key."""
    if path.exists():
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(partial, path)  # fails if another process got there first: theirs is kept
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_text().strip()
    if len(key) < MIN_KEY_CHARACTERS:
        raise ConfigError(f"{path} does not hold an audit key (too short)")
    return key.encode()


def keyed_audit(engine: Engine, settings: Settings) -> Checkpointer:
    """Hash this database's audit rows with the audit key, and the checkpointer of its chain."""
    key = audit_key(settings)
    use_key(engine, key)
    sink = AppendOnlyFile(settings.audit_checkpoints or settings.data_dir / CHECKPOINT_FILE)
    return Checkpointer(engine, sink, key, settings.audit_checkpoint_seconds)
