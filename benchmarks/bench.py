"""`make bench`: waitline against the ceiling and faust-streaming, side by side, in one run.

For each workload the same generated input is written to fresh topics, then each contender
(a separate process, its own consumer group) consumes it from the start:

- ceiling:  a raw confluent-kafka consume → produce passthrough with the same batching;
- waitline: the real worker process (`python -m waitline worker`);
- waitline-2p: `waitline worker --processes 2`, two members of one group under one command, for
  the machine's two cores (throughput only: it is not a per-process figure);
- faust:    the same rules as an idiomatic faust-streaming app (benchmarks/faust_app.py).

Throughput is input records per second between the first sample of the contender's committed
input offsets that shows progress and the sample where everything is committed (so process
start-up and the group join are not counted), median of --runs runs for every contender and
workload. The runs go round by round (every contender once a round), so the machine's drift
falls on all of them alike, and each ratio is also taken within every round (the "paired"
ratio: the median of the per-round ratios). Faust is given --faust-window seconds per run (it
is ~14-20x slower) and its rate is taken over that window.
large-state first loads 1,000,000 pending waits, waits until they are applied, then produces
the match-heavy stream (pre-encoded, so the producer is not the bottleneck) and measures that.
hot-pair puts everything on one pair (100k events, 10k waits, 10k events fanning out to them);
its rate is also given as a ratio to match-heavy's.

Then, at a fixed offered load of half each contender's measured match-heavy maximum: match
latency (event produced → resume readable); the ceiling's also at waitline's offered rate, the
broker's floor for one hop at the load waitline is measured at. For waitline: timeout lateness
and early firings, with an empty state and with 1,000,000 pending waits; peak RSS (VmHWM) of
every contender; the restore rate from benchmarks/results/recovery.json (`make recovery`).

The live streams (latency, lateness) are offered by a producer with linger.ms --offer-linger
(default 5, librdkafka's own). On the embedded broker that setting decides the latency more than
the worker does: Tansu's cost grows with the number of record batches a partition holds
(docs/benchmarks.md, "Latency on the embedded broker"), so the ceiling's and waitline's
latency, and waitline's lateness with an empty state and with 1,000,000 pending waits, are
measured again with the offer at linger.ms --batched-offer-linger (50; 0 leaves it out).
Each live measurement starts on a restarted, empty embedded broker (--keep-broker: on the one
in use); the throughput runs use the broker as the previous measurement left it.
`--latency-at RATES` and `--lateness-at RATES` measure only waitline's match latency or timeout
lateness at those rates (`--lateness-pending N`: with N pending waits applied first; `--trace`:
with where waitline's time goes, from benchmarks/traced_worker.py).

Writes benchmarks/results/latest.json and latest.png and prints a table. `--profile` instead
runs waitline once over match-heavy under py-spy and writes where the time goes to
benchmarks/results/profile.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.keys import make_key
from waitline.broker import EmbeddedBroker
from waitline.config import Settings
from waitline.topics import Topics, create_topics, load_topics

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PARTITIONS = 8
LIBRDKAFKA_LINGER_MS = 5  # librdkafka's default linger.ms: the live streams' offer by default
CONTENDERS = ("ceiling", "waitline", "waitline-2p", "faust")
WAITLINES = ("waitline", "waitline-2p")
# The timeout-lateness measurements of the timeouts workload, in order: (key under waitline's
# row, "" for the row itself; with 1,000,000 pending waits (scaled); offer at the batched linger).
LATENESS: tuple[tuple[str, bool, bool], ...] = (
    ("", False, False),
    ("batched_offer", False, True),
    ("with_pending_waits", True, False),
    ("with_pending_waits_batched_offer", True, True),
)
Record = tuple[str, bytes, bytes]  # topic, key, value


# -- input -------------------------------------------------------------------------------------


def input_producer(bootstrap: str, linger_ms: int = 50) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": linger_ms,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_000_000,
        }
    )


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def wait_records(
    t: Topics, n: int, keys: int, tag: str, timeout: Callable[[int], str]
) -> Iterator[Record]:
    for i in range(n):
        key = f"{tag}k{i % keys}"
        body = {
            "waitId": f"{tag}w{i}",
            "runId": f"{tag}r{i}",
            "name": "bench",
            "correlationKey": key,
            "timeout": timeout(i),
        }
        yield t.wait_commands.name, make_key("bench", key), _encode(body)


def event_records(t: Topics, n: int, keys: int, tag: str) -> Iterator[Record]:
    """Half of the events hit a key with waits (each such key twice), half miss."""
    for i in range(n):
        key = f"{tag}k{(i // 2) % keys}" if i % 2 == 0 else f"{tag}miss{i}"
        body = {"eventId": f"{tag}e{i}", "name": "bench", "correlationKey": key, "data": {"i": i}}
        yield t.events.name, make_key("bench", key), _encode(body)


def hot_pair_records(t: Topics, scale: float) -> Iterator[Record]:
    """One pair: 100k events (buffered), then 10k waits that count only events from their
    registration on (lookback 0), then 10k events; the first of those resolves the waits
    pending then, and any registered after it matches it at once."""
    events, waits = int(100_000 * scale), int(10_000 * scale)
    key = make_key("bench", "hot")
    for i in range(events):
        body = {"eventId": f"he{i}", "name": "bench", "correlationKey": "hot", "data": {"i": i}}
        yield t.events.name, key, _encode(body)
    for i in range(waits):
        wait = {"waitId": f"hw{i}", "runId": f"hr{i}", "name": "bench", "correlationKey": "hot"}
        yield t.wait_commands.name, key, _encode(wait | {"timeout": "1h", "lookback": "0"})
    for i in range(waits):
        body = {"eventId": f"hf{i}", "name": "bench", "correlationKey": "hot", "data": {"i": i}}
        yield t.events.name, key, _encode(body)


def produce(p: Producer, records: Iterator[Record] | list[Record]) -> int:
    n = 0
    for record in records:
        produce_one(p, *record)
        n += 1
    p.flush()
    return n


def build_input(workload: str, t: Topics, scale: float) -> tuple[Iterator[Record], list[Record]]:
    """(preload, stream): the preload is applied before the measured stream starts."""
    hour = lambda _i: "1h"  # noqa: E731
    waits, events, keys = int(100_000 * scale), int(200_000 * scale), int(20_000 * scale)
    preload: Iterator[Record] = iter(())
    if workload == "large-state":
        big = int(1_000_000 * scale)
        preload = wait_records(t, big, big, "big", hour)
    if workload in ("match-heavy", "large-state"):
        stream = [*wait_records(t, waits, keys, "", hour), *event_records(t, events, keys, "")]
    elif workload == "early-events":
        stream = [*event_records(t, events, keys, ""), *wait_records(t, waits, keys, "", hour)]
    elif workload == "timeouts":
        stream = list(wait_records(t, waits, waits, "", lambda i: f"{1 + i % 5}s"))
    elif workload == "hot-pair":
        stream = list(hot_pair_records(t, scale))
    else:
        raise SystemExit(f"unknown workload {workload!r}")
    return preload, stream


# -- contenders --------------------------------------------------------------------------------


def passthrough(bootstrap: str, prefix: str, group: str) -> None:
    """The ceiling: consume the inputs, produce every record to an output, same batching."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "partition.assignment.strategy": "range",
            "fetch.wait.max.ms": 50,
        }
    )
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
    )
    consumer.subscribe([f"{prefix}events", f"{prefix}wait-commands"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    out = f"{prefix}resumes"
    size = Settings().batch_size  # the worker's batching (Worker._take_batch), same setting
    while not stop.is_set():
        batch = consumer.consume(size, 0)
        if not batch:
            first = consumer.poll(0.1)
            batch = [first, *consumer.consume(size - 1, 0)] if first is not None else []
        for msg in batch:
            if msg.error() is None:
                produce_one(producer, out, msg.key(), msg.value())  # type: ignore[arg-type]
        if batch:
            producer.flush()
            consumer.commit(asynchronous=True)
    consumer.close()


def _spawn(
    contender: str,
    bootstrap: str,
    prefix: str,
    group: str,
    tmp: Path,
    profile: Path | None = None,
    trace: Path | None = None,
) -> subprocess.Popen[bytes]:
    log = open(tmp / f"{contender}-{group}.log", "wb")  # noqa: SIM115
    path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    if contender in WAITLINES:
        env.update(
            {
                "WAITLINE_BOOTSTRAP_SERVERS": bootstrap,
                "WAITLINE_TOPIC_PREFIX": prefix,
                "WAITLINE_GROUP_ID": group,
                "WAITLINE_STATE_DIR": str(tmp / group),
                "WAITLINE_TOPICS_FILE": str(REPO / "topics.yaml"),
                "WAITLINE_PROCESSES": "2" if contender == "waitline-2p" else "1",
            }
        )
        cmd = [sys.executable, "-m", "waitline", "worker"]
        if trace is not None:  # the same worker, timed (_trace_path: waitline's only)
            env["WAITLINE_TRACE"] = str(trace)
            cmd = [sys.executable, str(REPO / "benchmarks" / "traced_worker.py"), "worker"]
        if profile is not None:  # py-spy samples the real process; SIGTERM ends both
            spy = Path(sys.executable).with_name("py-spy")
            cmd = [str(spy), "record", "-r", "200", "-f", "raw", "-o", str(profile), "--", *cmd]
    elif contender == "ceiling":
        cmd = [sys.executable, str(Path(__file__)), "passthrough", bootstrap, prefix, group]
    else:
        env.update(
            {
                "BENCH_BOOTSTRAP": bootstrap,
                "BENCH_PREFIX": prefix,
                "BENCH_APP_ID": group,
                "BENCH_DATADIR": str(tmp / group),
            }
        )
        cmd = [
            sys.executable,
            "-m",
            "faust",
            "-A",
            "benchmarks.faust_app",
            "worker",
            "-l",
            "warn",
        ]
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Under py-spy: stop the worker; py-spy then writes its profile and exits.
    if isinstance(proc.args, list) and Path(str(proc.args[0])).name == "py-spy":
        for child in _children(proc.pid):
            os.kill(child, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
    proc = _spawn(contender, bootstrap, prefix, group, tmp, profile)
    first: tuple[float, int] | None = None
    last: tuple[float, int] = (time.monotonic(), 0)
    peak = 0.0
    deadline = time.monotonic() + 1800
    try:
        while time.monotonic() < deadline:
            time.sleep(0.05)  # the sampling period of the committed offsets
            peak = max(peak, _rss_mb(proc.pid))
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
        _stop(proc)
        progress.close()
    if first is None or last[0] <= first[0]:
        return 0.0, peak
    return (last[1] - first[1]) / (last[0] - first[0]), peak


def _rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a process and its children, in MiB."""
    peak = 0.0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) / 1024
        except OSError:
            pass
    return peak


def _trace_path(args: argparse.Namespace, tmp: Path, contender: str) -> Path | None:
    """Where a traced waitline writes its record (``--trace``; only waitline is traced)."""
    if not args.trace or contender != "waitline":
        return None
    return tmp / f"trace-{uuid.uuid4().hex[:8]}.json"


def _late(found: dict[str, Any]) -> str:
    """A timeout-lateness measurement on one line: percentiles and early firings."""
    return f"{found['lateness_ms']}, early {found['early_firings']}"


def _rates(spec: str | None) -> list[float]:
    """``--latency-at`` / ``--lateness-at``: comma-separated rates per second."""
    return [float(rate) for rate in spec.split(",")] if spec else []


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# -- latency and lateness (live) ---------------------------------------------------------------


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
    proc = _spawn(contender, bootstrap, prefix, group, tmp, trace=trace)
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

        cpu = _Cpu(trace, {"worker": proc.pid, "bench": os.getpid(), "broker": broker_pid})
        _offer_paced(p, reader, take, m, 3 / rate, offer)
        _take_until(reader, take, lambda: len(latencies) >= m, 60)
        cpu.stop()
    finally:
        _stop(proc)
        reader.close()
        progress.close()
    found: dict[str, Any] = _percentiles(latencies)
    found |= {"samples": len(latencies), "offered_per_s": round(rate)}
    return found | _traced(trace, cpu)


class _Cpu:
    """A live measurement's window, from construction to ``stop`` (wall-clock ``since`` and
    ``stopped``), and with a trace the CPU each process of ``pids`` used in it, in % of a core,
    and the whole machine's (``machine``: every process; ``steal``: taken by the host)."""

    def __init__(self, trace: Path | None, pids: dict[str, int | None]) -> None:
        self.since = time.time()
        self.started = time.monotonic()
        self.percent: dict[str, float] = {}
        self.pids: dict[str, int] = {}
        self.machine: tuple[float, float] | None = None
        if trace is not None:
            self.pids = {name: pid for name, pid in pids.items() if pid is not None}
            self.machine = _machine_cpu()
        self.before = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.stopped = time.time()
        elapsed = time.monotonic() - self.started
        for name, pid in self.pids.items():
            before, after = self.before[name], _cpu_seconds(pid)
            if before is not None and after is not None:
                self.percent[name] = round((after - before) / elapsed * 100)
        after_machine = _machine_cpu() if self.machine is not None else None
        if self.machine is not None and after_machine is not None:
            (busy, steal), (busy_after, steal_after) = self.machine, after_machine
            self.percent["machine"] = round((busy_after - busy) / elapsed * 100)
            self.percent["steal"] = round((steal_after - steal) / elapsed * 100)


def _machine_cpu() -> tuple[float, float] | None:
    """CPU seconds of all cores so far (Linux /proc/stat): busy (not idle or waiting on I/O),
    and stolen by the host."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
        # user nice system idle iowait irq softirq steal …; guest time is counted in user's
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first[1:9])
    except (OSError, IndexError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of a process so far (Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _traced(trace: Path | None, cpu: _Cpu) -> dict[str, Any]:
    """``{"trace": …}`` from a traced worker's record: what happened in the measurement's
    window (``cpu``)."""
    if trace is None or not trace.exists():
        return {}
    try:
        raw = json.loads(trace.read_text())
    except ValueError as exc:  # not a whole record: the measurement stands without it
        print(f"the trace {trace} is not readable ({exc}); no trace", file=sys.stderr)
        return {}
    summary = trace_summary(raw, cpu.since, cpu.stopped)
    return {"trace": summary | {"cpu_percent": cpu.percent}}


# The timers' stages a trace records (benchmarks/traced_worker.py), with what each measures.
_TIMER_STAGES = {
    "timer_sent_ms": "timer command sent after its deadline",
    "timer_hop_ms": "timer command produced → applied",
    "timer_applied_ms": "timer applied after its deadline",
}


def trace_summary(raw: dict[str, Any], since: float, until: float) -> dict[str, Any]:
    """Percentiles of what benchmarks/traced_worker.py recorded between wall-clock ``since`` and
    ``until`` (the measurement's start and end): the busy loops' durations and each phase's
    share of their time, the timers' stages and the collector's pauses, each in ms."""

    def inside(at: float) -> bool:
        return since <= at <= until

    loops = [loop for loop in raw["loops"] if inside(loop[0])]
    total = sum(loop[1] for loop in loops) or 1.0
    each: dict[str, list[float]] = {}
    for loop in loops:
        for phase, seconds in loop[3].items():
            each.setdefault(phase.strip("_"), []).append(seconds)
    summary: dict[str, Any] = {
        "loops": len(loops),
        "loop_ms": _percentiles([loop[1] * 1000 for loop in loops]),
        "loop_share": {phase: round(sum(times) / total, 3) for phase, times in each.items()},
        "phase_p99_ms": {
            phase: _percentiles([t * 1000 for t in times])["p99"] for phase, times in each.items()
        },
        "batch_records": _percentiles([float(loop[2]) for loop in loops]),
    }
    for stage in _TIMER_STAGES:
        values = [ms for at, ms in raw[stage] if inside(at)]
        if values:
            summary[stage] = _percentiles(values)
    pauses = [(int(generation), ms) for at, generation, ms in raw["gc_ms"] if inside(at)]
    full = [ms for generation, ms in pauses if generation == 2]
    summary["gc"] = {
        "pauses": len(pauses),
        "total_ms": round(sum(ms for _, ms in pauses), 1),
        "max_ms": round(max((ms for _, ms in pauses), default=0.0), 1),
        "full": len(full),
        "full_max_ms": round(max(full, default=0.0), 1),
    }
    return summary


def _trace_line(found: dict[str, Any]) -> str:
    """A traced measurement's summary as indented lines to print after its result (empty if
    not traced)."""
    trace = found.get("trace")
    if not trace:
        return ""
    parts = [f"{trace['loops']} busy loops, ms {trace['loop_ms']}"]
    if trace.get("cpu_percent"):
        used = ", ".join(f"{name} {pct}%" for name, pct in trace["cpu_percent"].items())
        parts.append(f"CPU while measured (% of a core): {used}")
    shares = ", ".join(
        f"{phase} {share:.0%} (p99 {trace['phase_p99_ms'][phase]} ms)"
        for phase, share in sorted(trace["loop_share"].items())
    )
    inside = "commit (at-least-once also an idle loop's settle; exactly-once also fire_timers)"
    parts.append(f"of their time: {shares}; flush (waiting for acks) is inside {inside}")
    gc = trace["gc"]
    parts.append(
        f"GC pauses: {gc['pauses']}, {gc['total_ms']} ms in all, the longest {gc['max_ms']} ms; "
        f"full collections {gc['full']}, the longest {gc['full_max_ms']} ms"
    )
    for stage, label in _TIMER_STAGES.items():
        if stage in trace:
            parts.append(f"{label}: {trace[stage]}")
    return "".join(f"\n  {part}" for part in parts)


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
    proc = _spawn("waitline", bootstrap, prefix, group, tmp, trace=trace)
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
            [(t.wait_commands.name, make_key("bench", "probe"), _encode(probe | {"timeout": "0"}))],
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

        cpu = _Cpu(trace, {"worker": proc.pid, "bench": os.getpid(), "broker": broker_pid})
        _offer_paced(p, reader, take, n, 1 / rate, lambda i: produce_one(p, *registrations[i]))
        _take_until(reader, take, lambda: len(lateness) >= n, 180)
        cpu.stop()
    finally:
        _stop(proc)
        reader.close()
        progress.close()
    return {
        "lateness_ms": _percentiles(lateness),
        "early_firings": sum(early),
        "fired": len(lateness),
        "registered": n,
        "pending_waits": pending,
    } | _traced(trace, cpu)


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


def produce_one(p: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            p.produce(topic, value, key)
            return
        except BufferError:
            p.poll(0.05)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    return {
        "p50": round(ordered[len(ordered) // 2], 1),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        "max": round(ordered[-1], 1),
    }


# -- the run -----------------------------------------------------------------------------------


def fresh_topics(bootstrap: str) -> tuple[Topics, str]:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    topics = load_topics(REPO / "topics.yaml", prefix)
    create_topics(AdminClient({"bootstrap.servers": bootstrap}), topics)
    return topics, prefix


def run_profile(bootstrap: str, scale: float, tmp: Path) -> int:
    """waitline over match-heavy under py-spy; writes benchmarks/results/profile.txt."""
    out = tmp / "waitline.stacks"
    topics, prefix = fresh_topics(bootstrap)
    rate, _ = measure("waitline", bootstrap, topics, prefix, "match-heavy", scale, tmp, None, out)
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # py-spy writes the file when the worker exits
    report = RESULTS / "profile.txt"
    RESULTS.mkdir(parents=True, exist_ok=True)
    report.write_text(
        f"waitline worker, match-heavy (scale {scale}), sampled by py-spy at 200 Hz: "
        f"{rate:,.0f} rec/s while sampled\n\n" + summarize_stacks(out)
    )
    print(report.read_text())
    return 0


def summarize_stacks(path: Path, top: int = 40) -> str:
    """Self and inclusive share of samples per function, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    lines = [f"{total} samples", "", "self %  function"]
    for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * count / total:6.1f}  {name}")
    lines += ["", "incl %  function"]
    for name, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * count / total:6.1f}  {name}")
    return "\n".join(lines) + "\n"


def _short(frame: str) -> str:
    """``func (/path/to/repo/pkg/mod.py:12)`` → ``func (pkg/mod.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for root in (str(REPO) + "/", "site-packages/", "lib/python3"):
        if root in where:
            where = where.split(root, 1)[1]
    return f"{name} ({where})"


@contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A fresh ``/tmp/waitline-NAME-xxxxxxxx`` for a run's broker log, worker logs and stores:
    removed when the run ends without an exception (they take 10s to 100s of MiB a run), kept
    and named on stderr when it raises."""
    tmp = Path(f"/tmp/waitline-{name}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        print(f"{name}: the logs and state directories are kept in {tmp}", file=sys.stderr)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="waitline vs the ceiling vs faust-streaming")
    parser.add_argument("--bootstrap", help="a running broker (default: embedded Tansu)")
    parser.add_argument("--runs", type=int, default=3, help="runs per contender (median)")
    parser.add_argument("--scale", type=float, default=1.0, help="input size factor")
    parser.add_argument("--faust-window", type=float, default=20.0, help="seconds per Faust run")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--no-faust", action="store_true")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument(
        "--workloads", default="match-heavy,early-events,timeouts,large-state,hot-pair"
    )
    parser.add_argument("--profile", action="store_true", help="profile waitline instead")
    parser.add_argument(
        "--latency-at",
        metavar="RATES",
        help="only the match latency (waitline's, or --latency-of's) at these rates/s",
    )
    parser.add_argument(
        "--latency-of",
        metavar="CONTENDERS",
        help="with --latency-at: whose latency, one after the other at each rate (default "
        "waitline; ceiling,waitline gives the broker's floor beside waitline's)",
    )
    parser.add_argument(
        "--lateness-at", metavar="RATES", help="only waitline's timeout lateness at these waits/s"
    )
    parser.add_argument(
        "--lateness-pending",
        type=int,
        default=0,
        metavar="N",
        help="with --lateness-at: N waits with a 1 h timeout applied first (default 0)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="with --latency-at/--lateness-at: also where waitline's time goes (its loop's "
        "phases, each timer's stages, GC pauses, each process's CPU), through "
        "benchmarks/traced_worker.py",
    )
    parser.add_argument(
        "--offer-linger",
        type=int,
        default=LIBRDKAFKA_LINGER_MS,
        metavar="MS",
        help="linger.ms of the producer offering the live streams (default 5, librdkafka's)",
    )
    parser.add_argument(
        "--batched-offer-linger",
        type=int,
        default=50,
        metavar="MS",
        help="the ceiling's and waitline's latency and lateness again with the offer at this "
        "linger.ms (default 50; 0: not)",
    )
    parser.add_argument(
        "--keep-broker",
        action="store_true",
        help="measure latency and lateness on the embedded broker as the throughput runs left "
        "it, instead of restarting it empty for each",
    )
    parser.add_argument(
        "--output", default="latest", help="results file name under benchmarks/results/"
    )
    args = parser.parse_args(argv)

    def known(flag: str, names: str) -> list[str]:
        """The contenders a flag names, each one of CONTENDERS (else one line, exit 2)."""
        listed = names.split(",")
        unknown = sorted(set(listed) - set(CONTENDERS))
        if unknown:
            parser.error(
                f"{flag}: no contender {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(CONTENDERS)})"
            )
        return listed

    named = known("--contenders", args.contenders)
    if len(set(named)) < len(named):
        parser.error("--contenders: a contender named twice (each runs once a round)")
    if args.lateness_pending and not args.lateness_at:
        parser.error("--lateness-pending goes with --lateness-at")
    if args.lateness_pending < 0:
        parser.error("--lateness-pending: a number of waits, 0 or more")
    if args.trace and not (args.latency_at or args.lateness_at):
        parser.error("--trace goes with --latency-at or --lateness-at")
    if args.latency_of is not None:
        if not args.latency_at:
            parser.error("--latency-of goes with --latency-at")
        known("--latency-of", args.latency_of)
    with scratch_dir("bench") as tmp:
        return run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> int:
    """The benchmark ``main`` asked for, with ``tmp`` for logs and stores."""
    broker = None if args.bootstrap else EmbeddedBroker(log_path=tmp / "broker.log")
    results: dict[str, Any] = {
        "workloads": {},
        "machine": _machine(args.bootstrap),
        "command": "python benchmarks/bench.py " + " ".join(sys.argv[1:]),
        "offer_linger_ms": args.offer_linger,
        "batched_offer_linger_ms": args.batched_offer_linger,
        "live_on_restarted_broker": not args.bootstrap and not args.keep_broker,
    }
    try:
        bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
        if args.profile:
            return run_profile(bootstrap, args.scale, tmp)
        linger, batched = args.offer_linger, args.batched_offer_linger
        n = int(100_000 * args.scale)  # the waits of a timeout-lateness measurement
        restarts, used = 0, False

        def live_topics() -> tuple[str, Topics, str]:
            """Fresh topics for a live measurement, on a restarted (empty) embedded broker, so
            no contender pays for what the others wrote before it: in one run on a filled
            broker the live figures were several times worse than on a fresh one right after
            (docs/benchmarks.md, "Latency on the embedded broker"). A broker given by
            --bootstrap is used as it is."""
            nonlocal broker, bootstrap, restarts, used
            if broker is not None and used and not args.keep_broker:
                broker.stop()
                restarts += 1
                broker = EmbeddedBroker(log_path=tmp / f"broker-{restarts}.log")
                bootstrap = broker.start()
            used = True
            return (bootstrap, *fresh_topics(bootstrap))

        def live_pid() -> int | None:
            """The embedded broker's process (after live_topics: it may have restarted)."""
            return broker.pid if broker is not None else None

        def latency(
            contender: str, rate: float, offer_linger: int, trace: Path | None = None
        ) -> dict[str, Any]:
            """A contender's match latency at ``rate`` records/s on fresh topics (live_topics)."""
            where, pid = live_topics(), live_pid()
            return live_latency(
                contender,
                *where,
                rate,
                tmp,
                args.latency_seconds,
                linger_ms=offer_linger,
                trace=trace,
                broker_pid=pid,
            )

        def lateness(
            rate: float, pending: int, linger_ms: int, trace: Path | None = None
        ) -> dict[str, Any]:
            """Waitline's timeout lateness at ``rate`` waits/s on fresh topics (live_topics)."""
            where, pid = live_topics(), live_pid()
            return timeout_lateness(
                *where,
                n,
                rate,
                tmp,
                pending=pending,
                linger_ms=linger_ms,
                trace=trace,
                broker_pid=pid,
            )

        if args.latency_at or args.lateness_at:
            for rate in _rates(args.latency_at):
                for contender in (args.latency_of or "waitline").split(","):
                    found = latency(contender, rate, linger, _trace_path(args, tmp, contender))
                    traced = _trace_line(found)
                    found.pop("trace", None)
                    print(
                        f"{contender} at {rate:,.0f} records/s offered: {found}{traced}",
                        flush=True,
                    )
            for rate in _rates(args.lateness_at):
                pending = args.lateness_pending
                late = lateness(rate, pending, linger, _trace_path(args, tmp, "waitline"))
                with_pending = f" with {pending:,} pending" if pending else ""
                print(
                    f"waitline timeouts at {rate:,.0f} waits/s{with_pending}: {_late(late)}"
                    f"{_trace_line(late)}",
                    flush=True,
                )
            return 0
        for workload in args.workloads.split(","):
            contenders = [
                c
                for c in args.contenders.split(",")
                # 1M waits at Faust's ~3k/s would take ~6 minutes just to load
                if not (c == "faust" and (args.no_faust or workload == "large-state"))
            ]
            runs: dict[str, list[float]] = {c: [] for c in contenders}
            peaks: dict[str, list[float]] = {c: [] for c in contenders}
            # Round by round, every contender once a round: the machine's speed drifts by
            # ±15% within minutes, and a contender's runs taken one after the other would put
            # that drift between the contenders, into every ratio (docs/benchmarks.md).
            for round_number in range(1, args.runs + 1):
                for contender in contenders:
                    topics, prefix = fresh_topics(bootstrap)
                    used = True
                    window = args.faust_window if contender == "faust" else None
                    rate, peak = measure(
                        contender, bootstrap, topics, prefix, workload, args.scale, tmp, window
                    )
                    runs[contender].append(rate)
                    peaks[contender].append(peak)
                    print(
                        f"{workload:13} {contender:11} round {round_number}: {rate:>9,.0f} rec/s",
                        flush=True,
                    )
            rows = summarize(workload, runs, peaks)
            for contender, row in rows.items():
                print(
                    f"{workload:13} {contender:11} {row['records_per_s']:>9,} rec/s "
                    f"runs={row['runs']} peak_rss={row['peak_rss_mb']} MiB",
                    flush=True,
                )
            if workload == "match-heavy" and not args.no_latency:
                half = {name: max(50.0, row["records_per_s"] / 2) for name, row in rows.items()}
                plan = []  # (contender, suffix of the result's key, offered records/s)
                for contender in rows:
                    if contender == "waitline-2p":
                        continue  # the targets are per process; its latency is the broker's too
                    plan.append((contender, "", half[contender]))
                    if contender == "ceiling" and "waitline" in rows:
                        # The broker's floor at waitline's load: one consume → produce hop with
                        # no state, offered what waitline is offered.
                        plan.append((contender, "_at_waitline_rate", half["waitline"]))
                for contender, suffix, rate in plan:
                    row = rows[contender]
                    offers = [("latency_ms", linger)]
                    if batched and contender != "faust":
                        offers.append(("latency_ms_batched_offer", batched))
                    for key, offer_linger in offers:
                        key += suffix
                        row[key] = latency(contender, rate, offer_linger)
                        print(
                            f"{workload:13} {contender:9} {key}, offer at linger.ms "
                            f"{offer_linger}: {row[key]}",
                            flush=True,
                        )
            if workload == "timeouts" and "waitline" not in rows:
                print("timeouts: waitline is not among --contenders; no timeout lateness")
            elif workload == "timeouts":
                w = rows["waitline"]
                # Each wait is two input records (its registration and, once due, its timer
                # command, which the workload's offsets count too): half the maximum in waits/s.
                rate = max(100.0, w["records_per_s"] / 4)
                for key, preloaded, batched_offer in LATENESS:
                    if batched_offer and not batched:
                        continue
                    pending = int(1_000_000 * args.scale) if preloaded else 0
                    offer_linger = batched if batched_offer else linger
                    found = lateness(rate, pending, offer_linger)
                    if key:
                        w[key] = found
                    else:
                        w |= found
                    print(
                        f"timeouts, {pending:,} pending waits, offer at linger.ms "
                        f"{offer_linger}: {_late(found)}",
                        flush=True,
                    )
            results["workloads"][workload] = rows
        small = results["workloads"].get("match-heavy", {}).get("waitline")
        large = results["workloads"].get("large-state", {}).get("waitline")
        if small and large:
            large["ratio_to_small_state"] = round(
                large["records_per_s"] / max(small["records_per_s"], 1), 3
            )
        hot = results["workloads"].get("hot-pair", {}).get("waitline")
        if small and hot:
            hot["ratio_to_match_heavy"] = round(
                hot["records_per_s"] / max(small["records_per_s"], 1), 3
            )
        recovery = RESULTS / "recovery.json"
        if recovery.exists():
            results["restore"] = json.loads(recovery.read_text())
        RESULTS.mkdir(parents=True, exist_ok=True)
        results["guarantee"] = os.environ.get("WAITLINE_GUARANTEE", "at_least_once")
        (RESULTS / f"{args.output}.json").write_text(json.dumps(results, indent=2) + "\n")
        _chart(results, RESULTS / f"{args.output}.png")
        _table(results)
        return 0
    finally:
        if broker is not None:
            broker.stop()


# Decimals of each ratio: to the ceiling, to Faust, two processes to one.
_DIGITS = {"ceiling": 3, "faust": 1, "one_process": 2}


def summarize(
    workload: str, runs: dict[str, list[float]], peaks: dict[str, list[float]]
) -> dict[str, dict[str, Any]]:
    """Each contender's row of a workload: the median rate, its runs and peak RSS, and for
    waitline (and waitline-2p) the ratios to each peer measured, of the medians and paired
    (``_paired``); waitline-2p's also to one process. Runs are listed in round order."""
    rows: dict[str, dict[str, Any]] = {}
    for contender, rates in runs.items():
        rows[contender] = {
            "records_per_s": round(statistics.median(rates)),
            "runs": [round(r) for r in rates],
            "peak_rss_mb": round(max(peaks[contender]), 1),
        }
    unrated = [name for name, rates in runs.items() if 0 in rates]
    for name in unrated:  # done before the first progress sample (tiny --scale)
        print(f"{workload}: {name} measured no rate in a run; no ratio to it")
    for name in (name for name in WAITLINES if name in rows):
        peers = {"ceiling": "ceiling", "faust": "faust"}  # peer → the ratio's label
        if name == "waitline-2p":
            peers["waitline"] = "one_process"
        for peer, label in peers.items():
            if peer not in rows or peer in unrated:
                continue
            digits = _DIGITS[label]
            ratio = rows[name]["records_per_s"] / rows[peer]["records_per_s"]
            rows[name][f"ratio_to_{label}"] = round(ratio, digits)
            # The same ratio taken within each round (runs minutes apart, not tens of
            # minutes), then the median: what drift between rounds cannot move.
            rows[name][f"ratio_to_{label}_paired"] = _paired(runs[name], runs[peer], digits)
    return rows


def _paired(ours: list[float], theirs: list[float], digits: int) -> float:
    """The median over rounds of ``ours[i] / theirs[i]`` (runs of one round)."""
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return round(statistics.median(ratios), digits)


def _machine(bootstrap: str | None) -> dict[str, Any]:
    import confluent_kafka

    versions: dict[str, Any] = {}
    for dist in ("confluent-kafka", "faust-streaming", "rocksdict", "pydantic"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            versions[dist] = None
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "librdkafka": confluent_kafka.libversion()[0],
        **versions,
        "broker": bootstrap or "tansu 0.6.0 (embedded, memory storage)",
    }


def _ratio(row: dict[str, Any], peer: str) -> str:
    """``row``'s ratio to ``peer`` for the table: "median (paired)", or "-" if none."""
    if f"ratio_to_{peer}" not in row:
        return "-"
    digits = _DIGITS[peer]
    paired = row.get(f"ratio_to_{peer}_paired")
    shown = "-" if paired is None else f"{paired:.{digits}f}"
    return f"{row[f'ratio_to_{peer}']:.{digits}f} ({shown})"


_RATED = ("ceiling", "waitline", "faust")  # the table's rate columns


def _table(results: dict[str, Any]) -> None:
    print(
        f"\n{'workload':13} {'ceiling':>10} {'waitline':>10} {'faust':>8} "
        f"{'÷ceiling':>15} {'÷faust':>13} {'rss MiB':>8} {'2 procs':>9} {'÷1 proc':>13}"
    )
    for name, rows in results["workloads"].items():
        w = rows.get("waitline", {})
        two = rows.get("waitline-2p", {})
        rates = [rows.get(c, {}).get("records_per_s", "-") for c in _RATED]
        print(
            f"{name:13} {rates[0]:>10} {rates[1]:>10} {rates[2]:>8} "
            f"{_ratio(w, 'ceiling'):>15} {_ratio(w, 'faust'):>13} "
            f"{w.get('peak_rss_mb', '-'):>8} {two.get('records_per_s', '-'):>9} "
            f"{_ratio(two, 'one_process'):>13}"
        )
    print("ratios: of the medians (paired: the median of the ratios within each round)")
    for name, rows in results["workloads"].items():
        for contender, row in rows.items():
            for suffix, at in (("", ""), ("_at_waitline_rate", " at waitline's rate")):
                if "latency_ms" + suffix in row:
                    print(f"{name}: {contender}{at} match latency ms {row['latency_ms' + suffix]}")
                if "latency_ms_batched_offer" + suffix in row:
                    print(
                        f"{name}: {contender}{at} match latency ms, offer at linger.ms "
                        f"{results['batched_offer_linger_ms']}: "
                        f"{row['latency_ms_batched_offer' + suffix]}"
                    )
        w = rows.get("waitline", {})
        for key, _, batched_offer in LATENESS:
            found = w.get(key) if key else w
            if found and "lateness_ms" in found:
                offer_linger = results[
                    "batched_offer_linger_ms" if batched_offer else "offer_linger_ms"
                ]
                print(
                    f"{name}: timeout lateness ms, {found['pending_waits']:,} pending waits, "
                    f"offer at linger.ms {offer_linger}: {_late(found)}"
                )
        if "ratio_to_small_state" in w:
            print(f"{name}: throughput ÷ small state {w['ratio_to_small_state']}")
        if "ratio_to_match_heavy" in w:
            print(f"{name}: throughput ÷ match-heavy {w['ratio_to_match_heavy']}")
    if "restore" in results:
        fresh = results["restore"]["fresh_state_dir"]
        print(
            f"restore (make recovery): {fresh['restore_records_per_s']:,} records/s "
            f"({fresh['changelog_records_restored']:,} in {fresh['restore_seconds']} s)"
        )


def _chart(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart (pip install '.[bench]')")
        return
    names = list(results["workloads"])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.2
    for i, contender in enumerate(CONTENDERS):
        values = [results["workloads"][n].get(contender, {}).get("records_per_s", 0) for n in names]
        offset = (i - (len(CONTENDERS) - 1) / 2) * width
        ax.bar([x + offset for x in range(len(names))], values, width, label=contender)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("input records/s (median)")
    ax.set_title("waitline vs ceiling vs faust-streaming (embedded broker, 2 cores)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "passthrough":
        passthrough(*sys.argv[2:5])
    else:
        sys.path.insert(0, str(REPO))
        raise SystemExit(main())
