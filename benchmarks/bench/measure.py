"""Throughput: input records per second of one contender over a workload.

The rate is taken between the first sample of the contender's committed input offsets that shows
progress and the sample where everything is committed, so process start-up and the group join
are not counted (over a fixed window for Faust, which is ~15x slower). Also each contender's
peak resident set (VmHWM, the process and its children).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from waitline.topics import Topics

from .contenders import children, spawn, terminate
from .workloads import PARTITIONS, build_input, input_producer, produce


class Progress:
    """Samples a group's committed offsets on the input topics."""

    def __init__(self, bootstrap: str, t: Topics, group: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        self.parts = [
            TopicPartition(name, p)
            for name in (t.events.name, t.wait_commands.name)
            for p in range(PARTITIONS)
        ]

    def committed(self) -> int:
        return sum(max(tp.offset, 0) for tp in self.consumer.committed(self.parts, timeout=10))

    def close(self) -> None:
        self.consumer.close()


def measure(
    contender: str,
    bootstrap: str,
    t: Topics,
    prefix: str,
    workload: str,
    scale: float,
    tmp: Path,
    window: float | None,
    profile: Path | None = None,
) -> tuple[float, float]:
    """Records/s over the stream and peak RSS (MiB) of one contender (over a window for Faust)."""
    preload, stream = build_input(workload, t, scale)
    p = input_producer(bootstrap)
    loaded = produce(p, preload)
    if not loaded:
        produce(p, stream)
    total = loaded + len(stream)
    group = f"{contender}-{uuid.uuid4().hex[:8]}"
    progress = Progress(bootstrap, t, group)
    proc = spawn(contender, bootstrap, prefix, group, tmp, profile)
    first: tuple[float, int] | None = None
    last: tuple[float, int] = (time.monotonic(), 0)
    peak = 0.0
    deadline = time.monotonic() + 1800
    try:
        while time.monotonic() < deadline:
            time.sleep(0.05)  # the sampling period of the committed offsets
            peak = max(peak, rss_mb(proc.pid))
            done = progress.committed()
            now = time.monotonic()
            if loaded and first is None and done >= loaded:
                first = (now, done)  # state is built: now the measured stream
                produce(p, stream)
                continue
            if not loaded and done and first is None:
                first = (now, done)
            if done > last[1]:
                last = (now, done)
            if done >= total or (window and first and now - first[0] > window):
                break
            if proc.poll() is not None:
                raise SystemExit(f"{contender} exited early; see {tmp}")
        else:
            raise SystemExit(f"{contender} did not finish {workload} in time; see {tmp}")
    finally:
        terminate(proc)
        progress.close()
    if first is None or last[0] <= first[0]:
        return 0.0, peak
    return (last[1] - first[1]) / (last[0] - first[0]), peak


def rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a process and its children, in MiB."""
    peak = 0.0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) / 1024
        except OSError:
            pass
    return peak


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    return {
        "p50": round(ordered[len(ordered) // 2], 1),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        "max": round(ordered[-1], 1),
    }
