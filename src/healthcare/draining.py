"""Draining: a server about to be stopped first tells the load balancer that it is not ready,
so that it is sent nothing new, and is stopped only once the balancer has taken it out.

Stopping a server that is still in the balancer's rotation loses requests: a connection the
kernel accepted just before the server closed its socket is reset, and a POST lost that way
cannot be sent again. ``healthcare drain`` leaves a marker that ``/readyz`` reads; ``healthcare
serve`` removes it when it starts, so a restarted server is ready again."""

from __future__ import annotations

import tempfile
from pathlib import Path


def marker(port: int) -> Path:
    """One marker per port: several servers on one host (or one test machine) drain apart."""
    return Path(tempfile.gettempdir()) / f"healthcare-draining-{port}"


def start_draining(port: int) -> None:
    marker(port).touch()


def is_draining(port: int) -> bool:
    return marker(port).exists()


def stop_draining(port: int) -> None:
    marker(port).unlink(missing_ok=True)
