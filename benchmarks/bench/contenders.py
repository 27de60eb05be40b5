"""The contenders, each a process of its own with its own consumer group.

- ceiling: a raw confluent-kafka consume → produce passthrough with the worker's batching, what
  the broker and librdkafka allow with no state at all (``passthrough``, run as
  ``python -m benchmarks.bench passthrough BOOTSTRAP PREFIX GROUP``);
- waitline: the real worker process (``python -m waitline worker``);
- waitline-2p: ``waitline worker --processes 2``, two members of one group under one command, for
  the machine's two cores (throughput only: it is not a per-process figure);
- faust: the same rules as an idiomatic faust-streaming app (benchmarks/faust_app.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from confluent_kafka import Consumer, Producer

from waitline.config import Settings

from .workloads import REPO, produce_one

CONTENDERS = ("ceiling", "waitline", "waitline-2p", "faust")
WAITLINES = ("waitline", "waitline-2p")


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


def spawn(
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
        cmd = [sys.executable, "-m", "benchmarks.bench", "passthrough", bootstrap, prefix, group]
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


def terminate(proc: subprocess.Popen[bytes]) -> None:
    # Under py-spy: stop the worker; py-spy then writes its profile and exits.
    if isinstance(proc.args, list) and Path(str(proc.args[0])).name == "py-spy":
        for child in children(proc.pid):
            os.kill(child, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
