"""``python -m waitline worker`` with a record of where a live record's time goes.

For ``python -m benchmarks.bench --latency-at/--lateness-at RATES --trace``: the worker runs as
always, and records, each with the wall-clock time it happened (the benchmark keeps what falls
inside its measurement):

- each run-loop iteration that did something: its duration and the time spent taking the
  batch, applying it, committing it (of which waiting for the broker's acks, ``_flush``, also
  counted on its own: at-least-once an idle loop flushes too, for the batch before) and firing
  timers;
- each timer, once: how long after its deadline the scan that sends its command ran, and how
  long after its deadline the command was applied (and after it was produced: the hop from the
  worker through the broker back to the worker);
- each pause of Python's cyclic garbage collector, with its generation.

When the worker stops, the record is written as JSON to the path in ``WAITLINE_TRACE``.
``bench.trace.trace_summary`` turns it into percentiles. The patches wrap the methods they time; the
worker's behaviour is unchanged (the timings cost ~1 µs per loop phase and per timer). The
timers' and the collector's samples are kept in arrays of floats, which the collector does not
walk (the loops, a few per second, in a list), so the record does not lengthen the pauses it
records.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from waitline.processors.correlation import Correlator
from waitline.processors.runtime import Worker

PHASES = ("_take_batch", "_apply", "_commit", "_flush", "_fire_timers")


class Trace:
    """What the patched methods record (see the module docstring)."""

    def __init__(self) -> None:
        # (wall-clock s at its end, seconds, records, {phase: seconds})
        self.loops: list[tuple[float, float, int, dict[str, float]]] = []
        # wall-clock s, ms, wall-clock s, ms, …: the scan − the deadline (each timer once), the
        # apply − the deadline, the apply − the timer command's record timestamp
        self.timer_sent_ms = array("d")
        self.timer_applied_ms = array("d")
        self.timer_hop_ms = array("d")
        self.gc_ms = array("d")  # wall-clock s, generation, ms, …
        self._seen: set[bytes] = set()
        self._phases: dict[str, float] = {}
        self._gc_started = 0.0

    def as_json(self) -> dict[str, Any]:
        """The record: each sample as a list ([wall-clock s, ms]; gc: [s, generation, ms])."""

        def rows(samples: array[float], width: int) -> list[list[float]]:
            return [list(samples[i : i + width]) for i in range(0, len(samples), width)]

        return {
            "loops": self.loops,
            "timer_sent_ms": rows(self.timer_sent_ms, 2),
            "timer_applied_ms": rows(self.timer_applied_ms, 2),
            "timer_hop_ms": rows(self.timer_hop_ms, 2),
            "gc_ms": rows(self.gc_ms, 3),
        }

    def install(self) -> Callable[[], None]:
        """Patch ``Worker`` and ``Correlator``; returns what undoes it."""
        originals: list[tuple[type, str, Any]] = []

        def patch(cls: type, name: str, wrapper: Callable[[Any], Any]) -> None:
            original = getattr(cls, name)
            originals.append((cls, name, original))
            setattr(cls, name, wrapper(original))

        for phase in PHASES:

            def timing(original: Callable[..., Any], phase: str = phase) -> Callable[..., Any]:
                return self._timed(phase, original)

            patch(Worker, phase, timing)
        patch(Worker, "run_once", self._loop)
        patch(Correlator, "due_timers", self._due)
        patch(Correlator, "_on_timer", self._applied)
        gc.callbacks.append(self._gc)

        def undo() -> None:
            for cls, name, original in reversed(originals):
                setattr(cls, name, original)
            gc.callbacks.remove(self._gc)

        return undo

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            ms = (time.perf_counter() - self._gc_started) * 1000
            self.gc_ms.extend((time.time(), info["generation"], ms))

    def _timed(self, phase: str, original: Callable[..., Any]) -> Callable[..., Any]:
        phases = self._phases

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - started

        return timed

    def _loop(self, original: Callable[[Worker], int]) -> Callable[[Worker], int]:
        def run_once(worker: Worker) -> int:
            self._phases.clear()
            sent = len(self.timer_sent_ms)
            started = time.perf_counter()
            records = original(worker)
            seconds = time.perf_counter() - started
            if records or len(self.timer_sent_ms) > sent:  # it did something
                self.loops.append((time.time(), seconds, records, dict(self._phases)))
            return records

        return run_once

    def _due(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def due_timers(core: Correlator, *args: Any, **kwargs: Any) -> Any:
            due = original(core, *args, **kwargs)
            now = time.time()
            for emit in due:
                if emit.value not in self._seen:  # sent again until read back: once
                    self._seen.add(emit.value)
                    deadline = json.loads(emit.value)["deadline"]
                    self.timer_sent_ms.extend((now, now * 1000 - deadline))
            return due

        return due_timers

    def _applied(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def on_timer(core: Correlator, state: Any, record: Any, command: Any, *rest: Any) -> Any:
            now = time.time()
            self.timer_applied_ms.extend((now, now * 1000 - command.deadline))
            self.timer_hop_ms.extend((now, now * 1000 - record.timestamp))
            return original(core, state, record, command, *rest)

        return on_timer


def main() -> int:
    out = os.environ.get("WAITLINE_TRACE")
    if not out:
        print("traced_worker.py: set WAITLINE_TRACE to the file to write", file=sys.stderr)
        return 2
    trace = Trace()
    trace.install()
    from waitline.cli import main as waitline_main

    try:
        return waitline_main(sys.argv[1:])
    finally:  # whole or not at all: a reader never sees half a record
        partial = Path(f"{out}.partial")
        partial.write_text(json.dumps(trace.as_json()))
        os.replace(partial, out)


if __name__ == "__main__":
    raise SystemExit(main())
