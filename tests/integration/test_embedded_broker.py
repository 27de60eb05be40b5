"""The embedded broker starts, serves a round trip, stops; and the fixture never hides a
missing configured broker behind a skip."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from waitline.broker import EmbeddedBroker
from waitline.errors import BrokerError

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_start_round_trip_stop(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    bootstrap = broker.start()
    try:
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce("probe", b"hello", b"k")
        assert producer.flush(10) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"g-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "max.poll.interval.ms": 10000,
            }
        )
        consumer.subscribe(["probe"])
        deadline = time.monotonic() + 30
        got = None
        while got is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got = msg.value()
        consumer.close()
        assert got == b"hello"
    finally:
        broker.stop()
    assert not broker.running
    broker.stop()  # idempotent


def test_taken_port_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(BrokerError, match="already in use"):
            EmbeddedBroker(port=port).start()
        assert time.monotonic() - started < 5


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
