"""Recovery figures: 1,000,000 pending waits, a SIGKILLed worker, then

(a) a restart on its intact local state directory, and
(b) a full restore from the changelog on a fresh state directory (a new machine).

    python benchmarks/recovery.py [--waits 1000000] [--bootstrap HOST:PORT]

Prints the seconds from process start to ready (group join and restore included) and the
changelog records restored per second, and writes benchmarks/results/recovery.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.cli import scratch_dir
from bench.workloads import input_producer, produce, wait_records
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from waitline.broker import EmbeddedBroker
from waitline.topics import create_topics, load_topics

REPO = Path(__file__).resolve().parent.parent
READY = re.compile(r"ready: partitions .*? after a restore of ([\d.]+)s \((\d+) changelog records")


def _start(env: dict[str, str], state: Path, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "waitline", "worker"],
            env={**env, "WAITLINE_STATE_DIR": str(state)},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    return proc, time.monotonic()


def _wait_for_line(log: Path, needle: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in log.read_text(errors="replace"):
            return time.monotonic()
        time.sleep(0.05)  # polling a log file for a condition, bounded by the deadline
    raise SystemExit(f"no {needle!r} in {log} within {timeout:g}s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--waits", type=int, default=1_000_000)
    parser.add_argument("--bootstrap")
    args = parser.parse_args()
    with scratch_dir("recovery") as tmp:
        return run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> int:
    worker: subprocess.Popen[bytes] | None = None
    broker = None if args.bootstrap else EmbeddedBroker(log_path=tmp / "broker.log")
    try:
        bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
        prefix = f"rec{uuid.uuid4().hex[:8]}."
        topics = load_topics(REPO / "topics.yaml", prefix)
        create_topics(AdminClient({"bootstrap.servers": bootstrap}), topics)
        group = f"{prefix}workers"
        env = {
            **os.environ,
            "WAITLINE_BOOTSTRAP_SERVERS": bootstrap,
            "WAITLINE_TOPIC_PREFIX": prefix,
            "WAITLINE_GROUP_ID": group,
            "WAITLINE_TOPICS_FILE": str(REPO / "topics.yaml"),
        }

        t0 = time.monotonic()
        day = lambda _i: "24h"  # noqa: E731
        produce(input_producer(bootstrap), wait_records(topics, args.waits, args.waits, "", day))
        print(f"produced {args.waits:,} registrations in {time.monotonic() - t0:.1f}s", flush=True)

        state = tmp / "state-a"
        worker, started = _start(env, state, tmp / "build.log")
        checker = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        parts = [
            TopicPartition(topics.wait_commands.name, p)
            for p in range(topics.wait_commands.partitions)
        ]
        deadline = time.monotonic() + 900
        while True:
            done = sum(max(tp.offset, 0) for tp in checker.committed(parts, timeout=10))
            if done >= args.waits:
                break
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"the worker applied {done:,} of {args.waits:,}; see {tmp}")
            time.sleep(0.5)  # polling committed offsets for a condition, bounded by the deadline
        build_s = time.monotonic() - started
        checker.close()
        print(
            f"worker applied {args.waits:,} registrations in {build_s:.1f}s "
            f"({args.waits / build_s:,.0f} records/s, incl. startup)",
            flush=True,
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait()

        results: dict[str, Any] = {"waits": args.waits, "build_seconds": round(build_s, 1)}
        for case, state_dir in (("intact_local_state", state), ("fresh_state_dir", tmp / "b")):
            log = tmp / f"{case}.log"
            worker, started = _start(env, state_dir, log)
            assigned = _wait_for_line(log, "ready: partitions", 900)
            match = READY.search(log.read_text())
            seconds, records = (float(match[1]), int(match[2])) if match else (0.0, 0)
            results[case] = {
                "seconds_to_assigned": round(assigned - started, 2),
                "changelog_records_restored": records,
                "restore_seconds": round(seconds, 2),
                "restore_records_per_s": round(records / seconds) if seconds else None,
            }
            print(
                f"{case}: ready after {assigned - started:.1f}s; restored {records:,} "
                f"changelog records in {seconds:.1f}s"
                + (f" ({records / seconds:,.0f} records/s)" if seconds else ""),
                flush=True,
            )
            worker.send_signal(signal.SIGTERM)
            worker.wait(120)
        out = REPO / "benchmarks" / "results" / "recovery.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
        return 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()  # a failure left it running
            worker.wait()
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    raise SystemExit(main())
