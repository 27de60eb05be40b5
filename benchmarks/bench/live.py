"""Live measurements: match latency and timeout lateness at a fixed offered load.

The stream is offered by a producer at a chosen ``linger.ms`` (librdkafka's 5 by default): on the
embedded broker the offer's batching sets the latency more than the worker does, so ``make
bench`` measures both at 5 and at 50 (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from waitline.schemas.keys import make_key
from waitline.topics import Topics

from .contenders import spawn, terminate
from .measure import Progress, percentiles
from .trace import Cpu, traced
from .workloads import (
    PARTITIONS,
    encode,
    event_records,
    input_producer,
    produce,
    produce_one,
    wait_records,
)

LIBRDKAFKA_LINGER_MS = 5  # librdkafka's default linger.ms: the live streams' offer by default


def _reader(bootstrap: str, t: Topics) -> Consumer:
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "fetch.wait.max.ms": 20,
            "enable.auto.commit": False,
        }
    )
    reader.assign([TopicPartition(t.resumes.name, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    return reader


def live_latency(
    contender: str,
    bootstrap: str,
    t: Topics,
    prefix: str,
    rate: float,
    tmp: Path,
    seconds: float,
    linger_ms: int = LIBRDKAFKA_LINGER_MS,
    trace: Path | None = None,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Event produced → its resume readable, at a fixed offered load of ``rate`` records/s.

    The offered stream is the match-heavy mix, in thirds: a registration (of a wait no event
    will come for), an event that matches a wait registered (and applied) before the clock
    started, and an event that matches nothing. Each matching event carries its production
    time; the reader takes the difference when its resume (for the ceiling: the passed-through
    event) becomes readable. Records are pre-encoded, so the offering costs little CPU.
    """
    group = f"lat-{contender}-{uuid.uuid4().hex[:8]}"
    m = max(100, int(rate * seconds / 3))
    p = input_producer(bootstrap, linger_ms)
    hour = lambda _i: "1h"  # noqa: E731
    produce(p, wait_records(t, m, m, "lat", hour))
    registrations = list(wait_records(t, m, m, "new", hour))
    misses = list(event_records(t, 2 * m, 2 * m, "latmiss"))[1::2]  # the odd ones miss
    keys = [make_key("bench", f"latk{i}") for i in range(m)]
    proc = spawn(contender, bootstrap, prefix, group, tmp, trace=trace)
    reader = _reader(bootstrap, t)
    progress = Progress(bootstrap, t, group)
    latencies: list[float] = []
    events = t.events.name
    try:
        deadline = time.monotonic() + 300
        while progress.committed() < m:  # the waits to match are applied
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{contender} did not apply the latency waits; see {tmp}")
            time.sleep(0.2)  # polling committed offsets, bounded by the deadline
        body = b'{"eventId":"late%d","name":"bench","correlationKey":"latk%d","timestamp":%d}'

        def offer(i: int) -> None:
            produce_one(p, *registrations[i])
            produce_one(p, events, keys[i], body % (i, i, int(time.time() * 1000)))
            produce_one(p, *misses[i])

        def take(value: bytes | None) -> None:
            _record_latency(value, latencies)

        cpu = Cpu(trace, {"worker": proc.pid, "bench": os.getpid(), "broker": broker_pid})
        _offer_paced(p, reader, take, m, 3 / rate, offer)
        _take_until(reader, take, lambda: len(latencies) >= m, 60)
        cpu.stop()
    finally:
        terminate(proc)
        reader.close()
        progress.close()
    found: dict[str, Any] = percentiles(latencies)
    found |= {"samples": len(latencies), "offered_per_s": round(rate)}
    return found | traced(trace, cpu)


def _record_latency(value: bytes | None, out: list[float]) -> None:
    body = json.loads(value or b"{}")
    event = body.get("event") if "waitId" in body else body
    if isinstance(event, dict) and str(event.get("eventId", "")).startswith("late"):
        out.append(time.time() * 1000 - event["timestamp"])


def timeout_lateness(
    bootstrap: str,
    t: Topics,
    prefix: str,
    n: int,
    rate: float,
    tmp: Path,
    pending: int = 0,
    linger_ms: int = LIBRDKAFKA_LINGER_MS,
    trace: Path | None = None,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """``n`` waits with 1–5 s timeouts registered into a running worker at ``rate`` per second
    (half the timeouts workload's measured maximum); how late do their timeouts fire?

    With ``pending``, that many waits with a 1 h timeout are applied first, so the deadline
    index is large. Lateness = when the resume is readable − registeredAt − timeout; a resume
    whose resolvedAt is before its deadline, or any other outcome, is an early firing.
    """
    group = f"tmo-{uuid.uuid4().hex[:8]}"
    p = input_producer(bootstrap, linger_ms)
    if pending:
        produce(p, wait_records(t, pending, pending, "pend", lambda _i: "1h"))
    proc = spawn("waitline", bootstrap, prefix, group, tmp, trace=trace)
    reader = _reader(bootstrap, t)
    progress = Progress(bootstrap, t, group)
    lateness: list[float] = []
    early: list[int] = []  # 1 per resume that fired early or was not a timeout
    try:
        deadline = time.monotonic() + 600
        while progress.committed() < max(pending, 1) and pending:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"waitline did not apply {pending} pending waits; see {tmp}")
            time.sleep(0.5)  # polling committed offsets, bounded by the deadline
        probe = {"waitId": "probe", "runId": "probe", "name": "bench", "correlationKey": "probe"}
        produce(
            p,
            [(t.wait_commands.name, make_key("bench", "probe"), encode(probe | {"timeout": "0"}))],
        )
        got = False
        while not got:  # the worker is up and fires timers
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"waitline did not fire the probe timer; see {tmp}")
            got = any(m.error() is None for m in reader.consume(100, 1.0))
        rng = random.Random(7)
        seconds = [rng.randint(1, 5) for _ in range(n)]
        registrations = list(wait_records(t, n, n, "t", lambda i: f"{seconds[i]}s"))
        timeouts = {f"tw{i}": s * 1000 for i, s in enumerate(seconds)}

        def take(value: bytes | None) -> None:
            early.append(_lateness(value, timeouts, lateness))

        cpu = Cpu(trace, {"worker": proc.pid, "bench": os.getpid(), "broker": broker_pid})
        _offer_paced(p, reader, take, n, 1 / rate, lambda i: produce_one(p, *registrations[i]))
        _take_until(reader, take, lambda: len(lateness) >= n, 180)
        cpu.stop()
    finally:
        terminate(proc)
        reader.close()
        progress.close()
    return {
        "lateness_ms": percentiles(lateness),
        "early_firings": sum(early),
        "fired": len(lateness),
        "registered": n,
        "pending_waits": pending,
    } | traced(trace, cpu)


def _offer_paced(
    p: Producer,
    reader: Consumer,
    take: Callable[[bytes | None], None],
    n: int,
    interval: float,
    offer: Callable[[int], None],
) -> None:
    """``offer(i)`` for i < n, one every ``interval`` s, handing what the reader has to ``take``
    meanwhile (so reading never lags the offer); then flush the producer."""
    start = time.monotonic()
    for i in range(n):
        due = start + i * interval
        while True:
            for msg in reader.consume(1000, 0):
                if msg.error() is None:
                    take(msg.value())
            if time.monotonic() >= due:
                break
            time.sleep(min(0.001, max(0.0, due - time.monotonic())))  # pacing the offer
        offer(i)
        p.poll(0)
    p.flush()


def _take_until(
    reader: Consumer, take: Callable[[bytes | None], None], done: Callable[[], bool], seconds: float
) -> None:
    """Hand what the reader gets to ``take`` until ``done()``, for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        for msg in reader.consume(10_000, 0.1):
            if msg.error() is None:
                take(msg.value())


def _lateness(value: bytes | None, timeouts: dict[str, int], out: list[float]) -> int:
    """Record one resume's lateness; 1 if it fired early (or was not a timeout), else 0."""
    resume = json.loads(value or b"{}")
    timeout = timeouts.get(resume.get("waitId"))
    if timeout is None:
        return 0
    due = resume["registeredAt"] + timeout
    out.append(time.time() * 1000 - due)
    return int(resume["resolvedAt"] < due or resume["outcome"] != "timed_out")
