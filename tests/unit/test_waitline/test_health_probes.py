"""Liveness and readiness of a worker, from its loop and its assignments (a fake worker and
clock; the real worker is in tests/integration/test_health.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from waitline.health import STALL_AFTER_S, Health, watch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _worker() -> Any:
    worker = SimpleNamespace(stores={}, on_assigned=None, iterations=0)

    def run_once() -> int:
        worker.iterations += 1
        return 0

    worker.run_once = run_once
    return worker


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_live_while_the_loop_goes_round_and_not_once_it_stalls(clock: Clock) -> None:
    health = Health(_worker(), stall_after=30, clock=clock)
    live, why = health.live()
    assert live and why.startswith("starting:")  # no iteration yet: start-up counts
    clock.now += 29
    health.iteration_done()
    clock.now += 29.5  # idle loops go round every 0.1 s: this is a stuck one
    assert health.live() == (True, "ok: the run loop's last iteration ended 29.500s ago")
    clock.now += 0.5
    live, why = health.live()
    assert not live and why == "stalled: the run loop's last iteration ended 30.0s ago (limit 30s)"


def test_a_loop_that_never_starts_is_not_live(clock: Clock) -> None:
    health = Health(_worker(), clock=clock)
    clock.now += STALL_AFTER_S
    assert health.live()[0] is False


def test_ready_once_the_assignment_is_restored_until_a_rebalance_takes_it(clock: Clock) -> None:
    worker = _worker()
    health = Health(worker, clock=clock)
    assert health.ready() == (False, "not ready: no partitions assigned and restored yet")
    worker.stores.update({0: object(), 1: object()})  # restored, processing
    health.assigned([0, 1])
    assert health.ready() == (True, "ready: partitions [0, 1]")

    worker.stores.clear()  # a rebalance revokes them (the eager protocol: all of them)
    assert health.ready() == (False, "not ready: a rebalance is under way")
    worker.stores[1] = object()  # the next assignment's restore has done one partition
    health.iteration_done()
    assert health.ready() == (False, "not ready: no partitions assigned and restored yet")
    worker.stores[2] = object()
    health.assigned([1, 2])
    assert health.ready() == (True, "ready: partitions [1, 2]")


def test_not_ready_when_not_live(clock: Clock) -> None:
    worker = _worker()
    health = Health(worker, clock=clock)
    worker.stores[0] = object()
    health.assigned([0])
    clock.now += STALL_AFTER_S
    ready, why = health.ready()
    assert not ready and why.startswith("not ready: stalled:")


def test_watch_follows_the_loop_and_keeps_an_existing_callback() -> None:
    worker = _worker()
    seen: list[list[int]] = []
    worker.on_assigned = seen.append
    health = watch(worker)
    assert health.live()[1].startswith("starting:")
    assert worker.run_once() == 0 and worker.iterations == 1
    assert health.live()[1].startswith("ok:")
    worker.stores[3] = object()
    worker.on_assigned([3])
    assert seen == [[3]] and health.ready()[0]
