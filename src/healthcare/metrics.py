"""Prometheus metrics, added up across the server's worker processes and so per replica.

In `healthcare serve` each worker process writes its samples to files in a folder named by
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode), which `serve` makes fresh at
every start; `/metrics` reads them all. prometheus_client chooses that mode when it is first
imported, so it is imported here only on first use, inside a worker, never at module import
(the server's parent process imports this package before it sets the folder). Without the
folder (tests, one process) the samples stay in the process.

This module imports nothing of the service: every layer may report to it."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from functools import cache
from types import SimpleNamespace
from typing import Any

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
ROUTE_KEY = "healthcare.route"  # the WSGI environ key that carries the route template
UNMATCHED = "unmatched"  # no route: one label for every unknown path, not one per path
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def fresh_multiprocess_dir() -> str:
    """A new, empty samples folder for the server about to start, named in the environment
    that its worker processes inherit. Samples of an earlier run are never added in."""
    old = os.environ.get(MULTIPROCESS_DIR)
    if old and os.path.isdir(old) and os.path.basename(old).startswith("healthcare-metrics-"):
        shutil.rmtree(old, ignore_errors=True)
    folder = tempfile.mkdtemp(prefix="healthcare-metrics-")
    os.environ[MULTIPROCESS_DIR] = folder
    return folder


_MAKING = threading.Lock()


def _instruments() -> SimpleNamespace:
    """The instruments, made once per process: threads that report their first sample at the
    same moment (a request and the writer thread) must not register them twice."""
    with _MAKING:
        return _made()


@cache
def _made() -> SimpleNamespace:
    from prometheus_client import Counter, Gauge, Histogram

    made = SimpleNamespace(
        requests=Counter(
            "healthcare_requests", "HTTP requests answered", ["method", "route", "status"]
        ),
        latency=Histogram(
            "healthcare_request_duration_seconds",
            "Time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
        ),
        commit_batch=Histogram(
            "healthcare_group_commit_batch_size",
            "Write transactions committed together",
            buckets=BATCH_BUCKETS,
        ),
        commit_seconds=Histogram(
            "healthcare_db_write_seconds",
            "Database time of one group commit, BEGIN to COMMIT",
            buckets=LATENCY_BUCKETS,
        ),
        audit_queued=Gauge(
            "healthcare_audit_events_queued",
            "Audit events of reads waiting for their flush",
            multiprocess_mode="livesum",
        ),
        sign_in_failures=Counter("healthcare_sign_in_failures", "Failed or throttled sign-ins"),
        workers=Gauge(
            "healthcare_worker_up",
            "1 for each live server process reporting",
            multiprocess_mode="liveall",
        ),
    )
    made.pid = None
    return made


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    made = _instruments()
    if made.pid != os.getpid():  # the first request of this (perhaps forked) process
        made.pid = os.getpid()
        made.workers.set(1)
    made.requests.labels(method, route, str(status)).inc()
    made.latency.labels(route).observe(seconds)


def observe_group_commit(size: int, seconds: float) -> None:
    made = _instruments()
    made.commit_batch.observe(size)
    made.commit_seconds.observe(seconds)


def set_audit_queued(count: int) -> None:
    _instruments().audit_queued.set(count)


def sign_in_failed() -> None:
    _instruments().sign_in_failures.inc()


def exposition() -> tuple[bytes, str]:
    """The text format, over every worker's samples when there are several."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    _instruments()
    registry: Any = REGISTRY
    if os.environ.get(MULTIPROCESS_DIR):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST
