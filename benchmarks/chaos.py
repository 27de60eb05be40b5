"""Fault injection: a generator, workers killed with SIGKILL at random, and a checker.

    python benchmarks/chaos.py --short          # the suite's version (tests/integration)
    python benchmarks/chaos.py                  # `make chaos`: >= 10 kills, 3 workers, 100k waits
    python benchmarks/chaos.py --guarantee exactly_once --short   # kills inside transactions

With ``--guarantee exactly_once`` every other kill is inside an open transaction: the worker,
told so through a file, SIGKILLs itself in its next batch transaction, its outputs and
changelog written and not committed. The checker reads ``resumes`` as a runner does, with
``isolation.level=read_committed``: a transaction left open that no one aborts blocks it, and
the waits behind it have no outcome.

A generator registers waits and sends events of every kind (match, early event, lookback miss,
duplicates, cancels, timeouts with each onTimeout, fan-out, a bad expression) while the harness
SIGKILLs workers, starts new ones (half on a fresh state directory, as on a new machine, half
on the dead worker's directory), and adds and removes workers. Then a checker reads the
resumes topic from the start and verifies against the oracle computed from what was sent:
every registered wait has exactly one distinct outcome, each outcome is the right one, no
resume exists for an unknown wait, nothing acknowledged was lost. It prints a verdict line
and the counts, and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from waitline.broker import EmbeddedBroker
from waitline.processors.runtime import KILL_IN_TRANSACTION_ENV
from waitline.schemas.keys import make_key
from waitline.topics import Topics, create_topics, load_topics

REPO = Path(__file__).resolve().parent.parent
Expected = tuple[str, str, str | None]  # outcome, action, eventId


@dataclass
class Oracle:
    expected: dict[str, Expected] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)
    records: int = 0


class Generator:
    """Produces scenarios at a steady rate and records what each wait must end as."""

    def __init__(self, bootstrap: str, topics: Topics, waits: int, seconds: float, seed: int):
        self.topics = topics
        self.target = waits
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.oracle = Oracle()
        self.errors: list[str] = []
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 10,
            }
        )

    def _send(
        self,
        topic: str,
        name: str,
        key: str,
        body: dict[str, Any],
        timestamp: int = 0,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        """Produce ``body``; ``timestamp``: the record time asked for (0: the producer's clock)."""
        while True:
            try:
                self.producer.produce(
                    topic,
                    json.dumps(body).encode(),
                    make_key(name, key),
                    on_delivery=on_delivery or self._ack,
                    timestamp=timestamp,
                )
                break
            except BufferError:
                self.producer.poll(0.05)
        self.oracle.records += 1

    def _ack(self, error: KafkaError | None, _msg: object) -> None:
        if error is not None:
            self.errors.append(error.str())

    def event_an_hour_old(self, wait_id: str, event_id: str, key: str) -> None:
        """An event whose record is stamped an hour ago, for a wait with a 10-minute lookback.

        Windows count in record times. A broker that keeps the producer's time (the embedded
        one) keeps the stamp: the event lies before the window and the wait times out. One
        that stamps its own append time (``LogAppendTime``) puts it inside: it matches. Which
        one it was, the delivery report says."""
        stamp = int(time.time() * 1000) - 3_600_000
        self.oracle.expected[wait_id] = ("timed_out", "continue", None)

        def appended(error: KafkaError | None, msg: Message) -> None:
            self._ack(error, msg)
            if error is None and msg.timestamp()[1] != stamp:
                self.oracle.expected[wait_id] = ("matched", "continue", event_id)

        body = {"eventId": event_id, "name": "chaos", "correlationKey": key, "timestamp": stamp}
        self._send(self.topics.events.name, "chaos", key, body, stamp, appended)

    def register(self, wait_id: str, key: str, **fields: Any) -> None:
        body = {
            "waitId": wait_id,
            "runId": f"run-{wait_id}",
            "name": "chaos",
            "correlationKey": key,
            "timeout": "10m",
            **fields,
        }
        self._send(self.topics.wait_commands.name, "chaos", key, body)

    def event(self, event_id: str, key: str, **fields: Any) -> None:
        body = {"eventId": event_id, "name": "chaos", "correlationKey": key, **fields}
        self._send(self.topics.events.name, "chaos", key, body)

    def scenario(self, n: int) -> int:
        """One scenario; returns how many waits it registered."""
        k = f"k{n}-{uuid.uuid4().hex[:6]}"
        w, e = f"w{n}", f"e{n}"
        kind = self.rng.choices(
            ["match", "early", "lookback-miss", "duplicate", "cancel", "timeout", "fan-out", "bad"],
            [40, 15, 8, 10, 10, 10, 5, 2],
        )[0]
        self.oracle.kinds[kind] += 1
        exp = self.oracle.expected
        if kind == "match":
            self.register(w, k)
            self.event(e, k)
            exp[w] = ("matched", "continue", e)
        elif kind == "early":
            self.event(e, k)
            self.register(w, k)
            exp[w] = ("matched", "continue", e)
        elif kind == "lookback-miss":
            self.event_an_hour_old(w, e, k)
            self.register(w, k, lookback="10m", timeout="3s", onTimeout="continue")
        elif kind == "duplicate":
            self.register(w, k)
            self.event(e, k, idempotencyKey=f"i{n}")
            self.event(f"{e}-dup", k, idempotencyKey=f"i{n}")
            exp[w] = ("matched", "continue", e)
        elif kind == "cancel":
            self.register(w, k)
            self._send(
                self.topics.wait_commands.name,
                "chaos",
                k,
                {"type": "cancel", "waitId": w, "name": "chaos", "correlationKey": k},
            )
            exp[w] = ("cancelled", "cancel", None)
        elif kind == "timeout":
            policy = self.rng.choice(["fail", "continue", "cancel"])
            self.register(w, k, timeout=f"{self.rng.randint(2, 5)}s", onTimeout=policy)
            exp[w] = ("timed_out", policy, None)
        elif kind == "fan-out":
            for i in range(3):
                self.register(f"{w}.{i}", k)
                exp[f"{w}.{i}"] = ("matched", "continue", e)
            self.event(e, k)
            return 3
        else:
            self.register(w, k, **{"if": "async.data.x >"})
            exp[w] = ("rejected", "fail", None)
        return 1

    def run(self) -> None:
        started = time.monotonic()
        registered = n = 0
        while registered < self.target:
            registered += self.scenario(n)
            n += 1
            due = started + self.seconds * registered / self.target
            if n % 200 == 0:
                self.producer.poll(0)
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing the load, not waiting for a condition
        while self.producer.flush(10) > 0:
            pass


class Fleet:
    """Worker processes with their own state directories."""

    def __init__(self, env: dict[str, str], tmp: Path, rng: random.Random, eos: bool) -> None:
        self.env = env
        self.tmp = tmp
        self.rng = rng
        self.eos = eos  # workers can be told to die inside a transaction
        self.live: list[_Member] = []
        self.started = self.kills = self.removals = self.in_transaction = 0
        self.errors: list[str] = []

    def start(self, state_dir: Path | None = None) -> None:
        state_dir = state_dir or self.tmp / f"state-{self.started}"
        log_path = self.tmp / f"worker-{self.started}.log"
        log = open(log_path, "wb")  # noqa: SIM115
        env = {**self.env, "WAITLINE_STATE_DIR": str(state_dir)}
        trigger = self.tmp / f"kill-in-transaction-{self.started}" if self.eos else None
        if trigger is not None:
            env[KILL_IN_TRANSACTION_ENV] = str(trigger)
        proc = subprocess.Popen(
            [sys.executable, "-m", "waitline", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        self.live.append(_Member(proc, state_dir, log_path, trigger))
        self.started += 1

    def wait_stable(self, partitions: int, timeout: float = 60.0) -> bool:
        """Until the live workers' logs say they hold every partition once, restored (ready).

        Used before a SIGKILL or a removal on the embedded broker: Tansu 0.6.0 never replaces a
        group leader that dies or leaves after being elected and before its SyncGroup, so the
        survivors wait for an assignment forever (docs/guarantees.md). Apache Kafka expires it
        after the session timeout; there, `--kill-during-rebalance` keeps those faults in.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.reap()
            held = [p for member in self.live for p in member.ready_partitions()]
            if sorted(held) == list(range(partitions)):
                return True
            time.sleep(0.2)  # polling the workers' logs, bounded by the deadline
        return False

    def reap(self) -> None:
        """Restart the workers that exited by themselves: a violation."""
        for member in list(self.live):
            code = member.proc.poll()
            if code is None:
                continue
            self.live.remove(member)
            self.errors.append(f"a worker exited with code {code}: see {member.log}")
            self.start(member.state_dir if self.rng.random() < 0.5 else None)

    def pause(self, seconds: float) -> None:
        """Let ``seconds`` pass, restarting workers that die meanwhile."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.reap()
            time.sleep(0.2)  # polling the processes, bounded by ``seconds``

    def kill_one(self, in_transaction: bool = False) -> None:
        member = self.live.pop(self.rng.randrange(len(self.live)))
        if in_transaction and member.trigger is not None:
            member.trigger.touch()  # it SIGKILLs itself inside its next batch transaction
            with contextlib.suppress(subprocess.TimeoutExpired):  # no batch came: see below
                member.proc.wait(30)
            if member.proc.returncode == -signal.SIGKILL:
                self.in_transaction += 1
        if member.proc.poll() is None:
            member.proc.send_signal(signal.SIGKILL)
        member.proc.wait()
        self.kills += 1
        # Half the time the worker comes back where it was; else a new machine takes over.
        self.start(member.state_dir if self.rng.random() < 0.5 else None)

    def remove_one(self) -> None:
        member = self.live.pop(self.rng.randrange(len(self.live)))
        member.proc.send_signal(signal.SIGTERM)
        member.proc.wait(60)
        self.removals += 1

    def stop_all(self) -> None:
        for member in self.live:
            member.proc.send_signal(signal.SIGTERM)
        for member in self.live:
            try:
                member.proc.wait(30)
            except subprocess.TimeoutExpired:
                member.proc.kill()
        self.live.clear()


@dataclass
class _Member:
    """A live worker process: its state directory and its log."""

    proc: subprocess.Popen[bytes]
    state_dir: Path
    log: Path
    trigger: Path | None  # exactly_once: the file that makes it die inside a transaction

    def ready_partitions(self) -> list[int]:
        """The partitions its log last reported ready (none while a rebalance is under way)."""
        current: list[int] = []
        for line in self.log.read_text(errors="replace").splitlines():
            if "waitline.worker ready: partitions [" in line:
                current = [int(p) for p in line.split("[", 1)[1].split("]", 1)[0].split(",") if p]
            elif "waitline.worker revoked partitions" in line or "assigned partitions" in line:
                current = []
        return current


def read_resumes(bootstrap: str, topic: str, partitions: int) -> list[dict[str, Any]]:
    """The whole resumes topic as a runner reads it (committed records only), to the
    partition-EOF events (not ListOffsets)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chk-{uuid.uuid4()}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out: list[dict[str, Any]] = []
    at_end: set[int] = set()
    while len(at_end) < partitions:
        for msg in consumer.consume(10_000, 1.0):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition() or 0)
                continue
            at_end.discard(msg.partition() or 0)
            out.append(json.loads(msg.value() or b"{}"))
    consumer.close()
    return out


def check(oracle: Oracle, resumes: list[dict[str, Any]]) -> list[str]:
    violations: list[str] = []
    seen: dict[str, set[tuple[Any, ...]]] = {}
    for resume in resumes:
        wait_id = resume.get("waitId")
        if wait_id not in oracle.expected:
            violations.append(f"resume for unknown wait {wait_id!r}")
            continue
        event = resume.get("event") or {}
        seen.setdefault(wait_id, set()).add(
            (resume["resumeId"], resume["outcome"], resume["action"], event.get("eventId"))
        )
    for wait_id, expected in oracle.expected.items():
        outcomes = seen.get(wait_id)
        if not outcomes:
            violations.append(f"{wait_id}: no outcome (expected {expected})")
            continue
        if len(outcomes) > 1:
            violations.append(f"{wait_id}: {len(outcomes)} distinct outcomes {sorted(outcomes)}")
            continue
        ((_, outcome, action, event_id),) = outcomes
        if (outcome, action, event_id) != expected:
            violations.append(f"{wait_id}: got {(outcome, action, event_id)}, expected {expected}")
    return violations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the test-suite version")
    parser.add_argument("--bootstrap", help="a running broker (default: embedded Tansu)")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--kills", type=int)
    parser.add_argument("--waits", type=int)
    parser.add_argument("--interval", type=float, help="seconds between fault injections")
    parser.add_argument(
        "--kill-during-rebalance",
        action="store_true",
        help="kill/remove without waiting for a stable group (not on Tansu 0.6.0: wait_stable)",
    )
    parser.add_argument("--guarantee", default="at_least_once")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--tmp", type=Path, default=None)
    args = parser.parse_args(argv)
    workers = args.workers or (2 if args.short else 3)
    kills = args.kills or (3 if args.short else 10)
    waits = args.waits or (3_000 if args.short else 100_000)
    interval = args.interval or (6.0 if args.short else 8.0)
    rng = random.Random(args.seed)
    tmp = args.tmp or Path(f"/tmp/waitline-chaos-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True, exist_ok=True)
    broker = None
    if args.bootstrap is None:
        broker = EmbeddedBroker(log_path=tmp / "broker.log")
    started = time.monotonic()
    fleet: Fleet | None = None
    keep = True  # the logs, unless the run passes
    try:
        bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
        prefix = f"chaos{uuid.uuid4().hex[:8]}."
        topics = load_topics(REPO / "topics.yaml", prefix)
        create_topics(AdminClient({"bootstrap.servers": bootstrap}), topics)
        env = {
            **os.environ,
            "WAITLINE_BOOTSTRAP_SERVERS": bootstrap,
            "WAITLINE_TOPIC_PREFIX": prefix,
            "WAITLINE_TOPICS_FILE": str(REPO / "topics.yaml"),
            "WAITLINE_GROUP_ID": f"{prefix}workers",
            "WAITLINE_GUARANTEE": args.guarantee,
        }
        eos = args.guarantee == "exactly_once"
        fleet = Fleet(env, tmp, rng, eos)
        for _ in range(workers):
            fleet.start()
        generator = Generator(bootstrap, topics, waits, interval * kills, args.seed)
        producing = threading.Thread(target=generator.run)
        producing.start()
        faults = 0
        while fleet.kills < kills:
            fleet.pause(interval * rng.uniform(0.5, 1.5))  # random moments, by design
            faults += 1
            if faults % 4 == 0 and len(fleet.live) > 1:
                if not args.kill_during_rebalance:
                    fleet.wait_stable(topics.events.partitions)
                fleet.remove_one()
            elif faults % 4 == 2 and len(fleet.live) < workers + 1:
                fleet.start()
            else:
                if not args.kill_during_rebalance:
                    fleet.wait_stable(topics.events.partitions)
                fleet.kill_one(in_transaction=eos and fleet.kills % 2 == 0)
        while producing.is_alive():
            fleet.pause(1.0)
        while len(fleet.live) < workers:
            fleet.start()
        deadline = time.monotonic() + 180
        resumes: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            fleet.reap()
            resumes = read_resumes(bootstrap, topics.resumes.name, topics.resumes.partitions)
            if {r.get("waitId") for r in resumes} >= set(generator.oracle.expected):
                break
        violations = check(generator.oracle, resumes)
        violations += [f"producer: {e}" for e in generator.errors]
        violations += [f"fleet: {e}" for e in fleet.errors]
        if eos and not fleet.in_transaction:
            violations.append("fleet: no worker was killed inside a transaction")
        waits_ = len(generator.oracle.expected)
        distinct = len({r.get("resumeId") for r in resumes})
        verdict = "PASS" if not violations else "FAIL"
        print(
            f"chaos: {verdict} waits={waits_} records={generator.oracle.records} "
            f"resumes={len(resumes)} repeats={len(resumes) - distinct} kills={fleet.kills} "
            f"in_transaction={fleet.in_transaction} "
            f"removals={fleet.removals} workers_started={fleet.started} "
            f"guarantee={args.guarantee} seed={args.seed} "
            f"elapsed={time.monotonic() - started:.0f}s"
        )
        print(
            "scenarios: " + " ".join(f"{k}={v}" for k, v in sorted(generator.oracle.kinds.items()))
        )
        for line in violations[:20]:
            print(f"violation: {line}")
        if len(violations) > 20:
            print(f"... and {len(violations) - 20} more")
        keep = bool(violations)
        return 0 if not violations else 1
    finally:
        if fleet is not None:
            fleet.stop_all()
        if broker is not None:
            broker.stop()
        if keep or args.tmp is not None:
            print(f"chaos: the logs and state directories are in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
