"""The health endpoints of real workers: ``/readyz`` before and after a restore, across a
rebalance, ``/healthz`` of an idle loop, rejected outcomes in ``/metrics``, and JSON logs.

The topics have one partition, so of two workers in the group one holds it and the other holds
none (not ready, for as long as the holder lives) until the holder stops; then it restores the
partition's state from the changelog before it is ready. Which of the two gets the partition is
the group's choice; the test follows either way, and no timing decides what it sees.
"""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import AdminClient
from harness import REPO, Stack, WorkerProcess

from waitline.broker import free_port
from waitline.config import Settings
from waitline.schemas.keys import make_key
from waitline.topics import create_topics, load_topics

pytestmark = pytest.mark.integration


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _await(
    port: int, path: str, status: int, worker: WorkerProcess, body: str | None = None
) -> str:
    """The body of ``path`` once it answers ``status`` (and ``body``, if given), polling: the
    server may not be up yet."""
    deadline = time.monotonic() + 60
    seen: tuple[int, str] | None = None
    while time.monotonic() < deadline and worker.alive():
        try:
            seen = _get(port, path)
        except urllib.error.URLError:  # not listening yet
            seen = None
        if seen is not None and seen[0] == status and body in (None, seen[1]):
            return seen[1]
        time.sleep(0.05)  # polling the endpoint, not a settle delay
    raise AssertionError(f"{path} never answered {status} (last: {seen}):\n{worker.log()}")


@pytest.fixture
def one_partition_stack(kafka_bootstrap: str, tmp_path: Path, uid: str) -> Iterator[Stack]:
    spec = yaml.safe_load((REPO / "topics.yaml").read_text())
    for topic in spec["topics"].values():
        topic["partitions"] = 1
    topics_file = tmp_path / "topics.yaml"
    topics_file.write_text(yaml.safe_dump(spec))
    prefix = f"h{uid}."
    settings = Settings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, topics_file=topics_file
    )
    topics = load_topics(topics_file, prefix)
    create_topics(AdminClient({"bootstrap.servers": kafka_bootstrap}), topics)
    stack = Stack(kafka_bootstrap, prefix, tmp_path / "state", tmp_path, settings, topics)
    yield stack
    stack.close()  # its workers too


def test_readiness_follows_assignment_and_restore(one_partition_stack: Stack, uid: str) -> None:
    stack = one_partition_stack
    ports = [free_port(), free_port()]

    def start(index: int) -> WorkerProcess:
        return stack.start_worker(
            {
                "WAITLINE_TOPICS_FILE": str(stack.settings.topics_file),
                "WAITLINE_STATE_DIR": str(stack.tmp / f"state-{index}"),  # a machine each
                "WAITLINE_METRICS_PORT": str(ports[index]),
                "WAITLINE_LOG_FORMAT": "json",
                # A producer setting the consumers ignore: librdkafka warns, through logging.
                "WAITLINE_KAFKA": json.dumps({"linger.ms": "20"}),
            }
        )

    first = start(0)
    assert _await(ports[0], "/readyz", 200, first) == "ready: partitions [0]\n"

    # State for the next worker to restore, and a registration the core rejects.
    client = stack.client
    client.register_wait(
        f"{uid}/pending", run_id=f"run-{uid}", name="doc.signed", correlation_key=uid, timeout="1h"
    )
    client.flush()
    rejected = {"waitId": f"{uid}/bad", "runId": "r", "name": "n", "correlationKey": uid}
    stack.produce_raw(
        "wait-commands", make_key("n", uid), json.dumps({**rejected, "timeout": "oops"}).encode()
    )
    assert stack.await_resume(f"{uid}/bad").outcome == "rejected"
    metrics = _get(ports[0], "/metrics")[1]
    assert 'waitline_outcomes_total{outcome="rejected"} 1.0' in metrics
    assert 'waitline_outcomes_total{outcome="matched"} 0.0' in metrics

    # A second member: one of the two holds the one partition, the other is not ready.
    second = start(1)
    [got] = second.await_log(r"assigned partitions \[(0?)\]", timeout=60)  # the group settled
    holder, idle = (second, first) if got else (first, second)
    port = {id(first): ports[0], id(second): ports[1]}
    assert _await(port[id(holder)], "/readyz", 200, holder) == "ready: partitions [0]\n"
    # (right after a revocation it says "a rebalance is under way", until its loop goes round)
    not_ready = "not ready: no partitions assigned and restored yet\n"
    _await(port[id(idle)], "/readyz", 503, idle, not_ready)
    status, live = _get(port[id(idle)], "/healthz")
    assert status == 200 and live.startswith("ok: the run loop's last iteration ended"), live
    age = float(re.findall(r"ended ([\d.]+)s ago", live)[0])
    assert age < 5, live  # idle, its loop still goes round
    assert _get(port[id(idle)], "/")[0] == 404

    # State the idle one's store has not seen: a wait that times out, processed by the holder.
    client.register_wait(
        f"{uid}/marker",
        run_id="m",
        name="n",
        correlation_key=uid,
        timeout="1s",
        on_timeout="continue",
    )
    client.flush()
    assert stack.await_resume(f"{uid}/marker").outcome == "timed_out"

    # The holder stops: the other restores partition 0 from the changelog, then is ready.
    assert holder.stop(signal.SIGTERM, timeout=60) == 0
    assert _await(port[id(idle)], "/readyz", 200, idle) == "ready: partitions [0]\n"
    restored = re.findall(r"restored partition 0: (\d+) changelog records", idle.log())
    assert int(restored[-1]) > 0, idle.log()
    client.send_event("doc.signed", uid, {"by": "ada"})
    client.flush()
    assert stack.await_resume(f"{uid}/pending").outcome == "matched"  # its state came along

    for worker in (first, second):
        entries = [json.loads(line) for line in worker.log().splitlines()]  # one object a line
        assert all({"ts", "level", "logger", "message"} <= entry.keys() for entry in entries)
        assert any(
            entry["logger"] == "waitline.kafka" and "CONFWARN" in entry["message"]
            for entry in entries
        )
