"""10,000 concurrent ``await client.wait_for_event(...)`` in one process (docs/sdk.md, "Scale").

    .venv/bin/python benchmarks/aio_waits.py [--waits 10000] [--bootstrap HOST:PORT]

Starts an embedded broker (unless ``--bootstrap``), creates fresh topics and one worker, then,
in this process, one ``AsyncClient``:

1. starts ``--waits`` tasks at once, each following its wait's resume and registering it (one
   wait per run and key); **registered** is the time until every registration is acknowledged;
2. sends the matching events, all at once; **resolved** is the time from the first send until
   every task has its resume (the worker's matching included);

and reports this process's peak RSS (and its RSS before the waits), the Kafka consumers the
client created (the point: one), its threads, the CPU time this process used in each phase
(all threads; the broker and the worker share the machine, so wall times depend on them), and
the worst lateness of a 5 ms sleep on the event loop in each phase. Writes
benchmarks/results/aio-waits.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cli import scratch_dir
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from waitline.aio import AsyncClient
from waitline.broker import EmbeddedBroker
from waitline.config import Settings
from waitline.topics import Topics, create_topics, load_topics

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "aio-waits.json"


def rss_mib() -> float:
    """This process's resident memory now, from /proc."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class LoopLag:
    """The worst lateness of a 5 ms sleep on the loop while it runs."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - start - 0.005)


class CountingConsumers:
    """The client's consumer factory, counting what it builds."""

    def __init__(self) -> None:
        self.built = 0

    def __call__(self, config: dict[str, Any]) -> Consumer:
        self.built += 1
        return Consumer(config)


async def measure(settings: Settings, topics: Topics, waits: int) -> dict[str, Any]:
    consumers = CountingConsumers()
    lag = LoopLag()
    lag_task = asyncio.get_running_loop().create_task(lag.run())
    prefix = uuid.uuid4().hex[:8]
    async with AsyncClient(settings, topics=topics, consumer=consumers) as client:
        await client.send_event("bench.warmup", prefix)  # the producer and its thread
        start = time.perf_counter()
        async with client.expect("warm-up"):  # the resume consumer, read to its partitions' ends
            consumer_start_s = time.perf_counter() - start
        rss_before = rss_mib()
        held = {}
        registered = 0
        all_registered = asyncio.Event()

        async def one(i: int) -> str:
            nonlocal registered
            async with client.expect(f"{prefix}-{i}/w") as pending:
                await client.register_wait(
                    f"{prefix}-{i}/w",
                    run_id=f"{prefix}-{i}",
                    name="bench.go",
                    correlation_key=f"{prefix}-{i}",
                    timeout="1h",
                )
                registered += 1
                if registered == waits:
                    all_registered.set()
                resume = await pending.result(600)
                return resume.outcome

        lag.worst = 0.0
        cpu: dict[str, float] = {}
        cpu_start = time.process_time()
        start = time.perf_counter()
        tasks = [asyncio.create_task(one(i)) for i in range(waits)]
        await all_registered.wait()
        registered_s = time.perf_counter() - start
        held["registering"], lag.worst = lag.worst, 0.0
        cpu["registering"], cpu_start = time.process_time() - cpu_start, time.process_time()
        threads = threading.active_count()
        following = client.waiting

        sent = time.perf_counter()
        await asyncio.gather(
            *(client.send_event("bench.go", f"{prefix}-{i}", {"i": i}) for i in range(waits))
        )
        sent_s = time.perf_counter() - sent
        held["sending"], lag.worst = lag.worst, 0.0
        cpu["sending"], cpu_start = time.process_time() - cpu_start, time.process_time()
        outcomes = await asyncio.gather(*tasks)
        resolved_s = time.perf_counter() - sent
        held["resolving"] = lag.worst
        cpu["resolving"] = time.process_time() - cpu_start
        assert outcomes == ["matched"] * waits, "every wait resolves matched"
        assert client.waiting == 0
    lag_task.cancel()
    return {
        "waits": waits,
        "consumer_start_s": round(consumer_start_s, 2),
        "registered_s": round(registered_s, 2),
        "events_sent_s": round(sent_s, 2),
        "resolved_s": round(resolved_s, 2),
        "rss_before_mib": round(rss_before, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "consumers": consumers.built,
        "threads": threads,
        "followed_at_once": following,
        "process_cpu_s": {phase: round(s, 2) for phase, s in cpu.items()},
        "loop_held_max_ms": {phase: round(s * 1e3, 1) for phase, s in held.items()},
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    broker = None if args.bootstrap else EmbeddedBroker(log_path=tmp / "broker.log")
    worker: subprocess.Popen[bytes] | None = None
    try:
        bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
        prefix = f"aio{uuid.uuid4().hex[:8]}."
        topics = load_topics(REPO / "topics.yaml", prefix)
        create_topics(AdminClient({"bootstrap.servers": bootstrap}), topics)
        env = {
            **os.environ,
            "WAITLINE_BOOTSTRAP_SERVERS": bootstrap,
            "WAITLINE_TOPIC_PREFIX": prefix,
            "WAITLINE_GROUP_ID": f"{prefix}workers",
            "WAITLINE_TOPICS_FILE": str(REPO / "topics.yaml"),
            "WAITLINE_STATE_DIR": str(tmp / "state"),
        }
        log = tmp / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "waitline", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        deadline = time.monotonic() + 120
        while "ready: partitions" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"the worker did not get ready:\n{log.read_text()}")
            time.sleep(0.05)  # polling the worker's log for a condition, bounded
        settings = Settings(
            bootstrap_servers=bootstrap, topic_prefix=prefix, topics_file=REPO / "topics.yaml"
        )
        return asyncio.run(measure(settings, topics, args.waits))
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
        if broker is not None:
            broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waits", type=int, default=10_000)
    parser.add_argument("--bootstrap", help="an existing broker (default: start an embedded one)")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args()
    with scratch_dir("aio-waits") as tmp:
        results = run(args, tmp)
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "broker": "external" if args.bootstrap else "embedded (tansu)",
        "cores": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 1),
        **results,
    }
    for name, value in results.items():
        print(f"{name:>18}: {value}")
    if not args.no_write:
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
