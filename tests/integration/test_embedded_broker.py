"""The embedded broker starts, carries a record, stops, and refuses a port that is taken; and
the broker fixture never hides a missing configured broker behind a skip."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from waitline.broker import EmbeddedBroker
from waitline.errors import BrokerError

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _consume_until_eof(consumer: Consumer, topic: str, timeout: float) -> list[bytes]:
    """Everything in the (single-partition) topic, read until the partition-EOF event."""
    received: list[bytes] = []
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"no partition EOF after {timeout:g}s: {received}"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        error = msg.error()
        if error is not None and error.code() == KafkaError._PARTITION_EOF:
            if received:  # EOF before the record would mean the assignment came up empty
                return received
            continue
        assert error is None, error
        value = msg.value()
        assert isinstance(value, bytes)
        received.append(value)


def test_round_trip_then_stop(tmp_path: Path, unique_name: Callable[[str], str]) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    try:
        bootstrap = broker.start()
        assert bootstrap == broker.bootstrap_servers
        topic = unique_name("embedded")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        created = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        created[topic].result(timeout=10)

        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce(topic, key=b"k", value=b"hello")
        assert producer.flush(10) == 0

        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique_name("group"),
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "max.poll.interval.ms": 10000,
                "enable.partition.eof": True,
            }
        )
        try:
            assert _consume_until_eof(consumer, topic, timeout=30) == [b"hello"]
        finally:
            consumer.close()
        pid = broker.pid
        assert pid is not None
    finally:
        broker.stop()
    assert not broker.running
    assert broker.pid is None
    with pytest.raises(ProcessLookupError):  # exited, and reaped by stop()
        os.kill(pid, 0)
    broker.stop()  # idempotent


def test_start_on_a_taken_port_fails_fast(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        broker = EmbeddedBroker(port=port, log_path=tmp_path / "broker.log")
        started = time.monotonic()
        with pytest.raises(BrokerError, match=f"port {port} .* already in use"):
            broker.start(timeout=10)
        assert time.monotonic() - started < 5
        assert not broker.running


def test_unreachable_configured_broker_fails_the_run(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_needs_broker(kafka_bootstrap):\n    assert kafka_bootstrap\n")
    (tmp_path / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
        env={
            **os.environ,
            "WAITLINE_TEST_BOOTSTRAP": "127.0.0.1:1",
            "WAITLINE_TEST_CONNECT_TIMEOUT": "2",
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout
    assert "does not answer" in result.stdout
    assert "skipped" not in result.stdout
    assert "1 failed" in result.stdout or "1 error" in result.stdout
