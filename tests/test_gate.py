"""The request gate: one holder at a time, handed over in arrival order, stepped aside around
waits, and held by every request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from healthcare.gate import Gate
from healthcare.observability import RequestMiddleware

WAIT = 5.0


def _in_thread(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_one_holder_at_a_time(fresh_gate: Gate) -> None:
    inside, most = [0], [0]

    def request() -> None:
        for _ in range(200):
            with fresh_gate.held():
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                time.sleep(0)  # invite a thread switch while holding the gate
                inside[0] -= 1

    threads = [_in_thread(request) for _ in range(8)]
    for thread in threads:
        thread.join(WAIT * 4)
    assert not any(t.is_alive() for t in threads)
    assert most[0] == 1


def test_waiting_threads_get_the_gate_in_arrival_order(fresh_gate: Gate) -> None:
    order: list[int] = []

    def request(n: int) -> Callable[[], None]:
        def run() -> None:
            with fresh_gate.held():
                order.append(n)

        return run

    fresh_gate.acquire()
    threads = []
    for n in range(5):
        threads.append(_in_thread(request(n)))
        _until(lambda n=n: len(fresh_gate._waiting) == n + 1)
    fresh_gate.release()
    for thread in threads:
        thread.join(WAIT)
    assert order == [0, 1, 2, 3, 4]
    assert not fresh_gate._waiting
    assert fresh_gate._owner is None


def test_a_holder_that_steps_aside_lets_another_in_and_gets_the_gate_back(
    fresh_gate: Gate,
) -> None:
    other_ran, other_may_leave = threading.Event(), threading.Event()
    events: list[str] = []

    def other() -> None:
        with fresh_gate.held():
            events.append("other in")
            other_ran.set()
            other_may_leave.wait(WAIT)
            events.append("other out")

    with fresh_gate.held():
        with fresh_gate.stepped_aside():
            assert not fresh_gate.held_here()
            thread = _in_thread(other)
            assert other_ran.wait(WAIT)  # it ran while this holder waited
            other_may_leave.set()
        events.append("back")  # only once the other one let go
        assert fresh_gate.held_here()
    thread.join(WAIT)
    assert events == ["other in", "other out", "back"]


def test_stepping_aside_without_the_gate_leaves_the_holder_alone(fresh_gate: Gate) -> None:
    fresh_gate.acquire()
    holder = fresh_gate._owner
    done = threading.Event()

    def bystander() -> None:
        with fresh_gate.stepped_aside():
            pass
        done.set()

    _in_thread(bystander)
    assert done.wait(WAIT)
    assert fresh_gate._owner == holder
    fresh_gate.release()
    assert fresh_gate._owner is None


def test_a_holder_that_fails_lets_go(fresh_gate: Gate) -> None:
    with pytest.raises(RuntimeError), fresh_gate.held():
        raise RuntimeError("the request failed")
    assert fresh_gate._owner is None


def test_every_request_holds_the_gate_while_it_runs(fresh_gate: Gate) -> None:
    seen: list[bool] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(fresh_gate.held_here())
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    response = Client(RequestMiddleware(app), Response).get("/anything")
    assert response.status_code == 200
    assert seen == [True]
    assert fresh_gate._owner is None  # let go when the answer was handed on
