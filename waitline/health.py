"""Liveness and readiness of one worker, for ``/healthz`` and ``/readyz`` (``waitline.metrics``).

- **Live**: the run loop finished an iteration less than ``STALL_AFTER_S`` ago. An idle loop
  still goes round every poll timeout (0.1 s), so an old last iteration means the loop is stuck
  (a flush the broker never acknowledges, a deadlock), not that no records came. Until the first
  iteration, the time since the worker was watched counts.
- **Ready**: live, and every partition of the last assignment is restored and processing. The
  worker calls ``on_assigned`` with its partitions once their restore is done; a rebalance takes
  them out of ``Worker.stores`` before it hands out new ones, so the worker is not ready again
  until the next ``on_assigned``. A member with no partitions (more workers than partitions) is
  never ready: it serves nothing.

``Worker`` has no public per-iteration hook, so ``watch`` wraps the instance's ``run_once``
(which ``Worker.run`` calls once per iteration): ``_observe_iterations`` is the one place that
relies on that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from waitline.processors.runtime import Worker

__all__ = ["STALL_AFTER_S", "Health", "watch"]

# As long as the consumer's max.poll.interval.ms: a loop that has not come round in this long
# has been put out of its group already.
STALL_AFTER_S = 30.0


class Health:
    """What the health endpoints report. The worker's thread calls ``iteration_done`` and
    ``assigned``; the HTTP threads call ``live`` and ``ready``, which change nothing."""

    def __init__(
        self,
        worker: Worker,
        stall_after: float = STALL_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._worker = worker
        self._stall_after = stall_after
        self._clock = clock
        self._last_iteration = clock()
        self._iterated = False
        self._ready: frozenset[int] | None = None  # partitions of the last on_assigned

    # -- the worker's thread -------------------------------------------------------------------

    def iteration_done(self) -> None:
        self._last_iteration = self._clock()
        self._iterated = True
        if self._ready is not None and not self._held(self._ready):
            self._ready = None  # a rebalance took them; ready again at the next on_assigned

    def assigned(self, partitions: list[int]) -> None:
        self._ready = frozenset(partitions)

    # -- the HTTP threads ----------------------------------------------------------------------

    def live(self) -> tuple[bool, str]:
        """Whether the loop runs, and one line saying so."""
        age = self._clock() - self._last_iteration
        if age >= self._stall_after:
            return False, (
                f"stalled: the run loop's last iteration ended {age:.1f}s ago "
                f"(limit {self._stall_after:g}s)"
            )
        if not self._iterated:
            return True, f"starting: the run loop has not completed an iteration yet ({age:.1f}s)"
        return True, f"ok: the run loop's last iteration ended {age:.3f}s ago"

    def ready(self) -> tuple[bool, str]:
        """Whether the worker processes its partitions, and one line saying so."""
        live, why = self.live()
        if not live:
            return False, f"not ready: {why}"
        ready = self._ready
        if ready is None:
            return False, "not ready: no partitions assigned and restored yet"
        if not ready:
            return False, "not ready: this member has no partitions"
        if not self._held(ready):
            return False, "not ready: a rebalance is under way"
        return True, f"ready: partitions {sorted(ready)}"

    def _held(self, partitions: frozenset[int]) -> bool:
        stores = self._worker.stores  # read by membership only: the worker thread changes it
        return all(number in stores for number in partitions)


def watch(worker: Worker) -> Health:
    """A ``Health`` fed by ``worker``'s loop and assignments; call before ``worker.run``.
    An ``on_assigned`` callback already set is still called, before the health is updated."""
    health = Health(worker)
    _observe_iterations(worker, health.iteration_done)
    previous = worker.on_assigned

    def assigned(partitions: list[int]) -> None:
        if previous is not None:
            previous(partitions)
        health.assigned(partitions)

    worker.on_assigned = assigned
    return health


def _observe_iterations(worker: Worker, done: Callable[[], None]) -> None:
    """Call ``done`` after each iteration of ``worker``'s loop that returns.

    The one place that relies on how ``Worker.run`` loops (it calls ``self.run_once()``): a
    public hook in the worker, such as an ``on_iteration`` callback or a ``last_iteration``
    time, would replace it."""
    run_once = worker.run_once

    def observed() -> int:
        applied = run_once()
        done()
        return applied

    instance: Any = worker  # an instance attribute, shadowing the method for this worker only
    instance.run_once = observed
