"""The one broker fixture of the suite.

``kafka_bootstrap`` picks, in order:

1. the broker named by ``WAITLINE_TEST_BOOTSTRAP`` — the run FAILS if it does not answer;
2. a testcontainers Apache Kafka, where a Docker engine answers;
3. an embedded Tansu broker (the default on development and CI machines here).

Tests marked ``kafka_only`` skip on Tansu, saying which Kafka behaviour they need.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from waitline.broker import EmbeddedBroker, wait_for_broker
from waitline.errors import BrokerError


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


@pytest.fixture(scope="session")
def broker_kind(kafka_broker: tuple[str, str]) -> str:
    """``configured``, ``kafka`` (testcontainers) or ``tansu`` (embedded)."""
    return kafka_broker[1]


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: tuple[str, str]) -> str:
    return kafka_broker[0]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    configured = os.environ.get("WAITLINE_TEST_BOOTSTRAP")
    if configured:
        try:
            wait_for_broker(configured, timeout=15.0)
        except BrokerError as exc:
            pytest.fail(f"WAITLINE_TEST_BOOTSTRAP={configured} does not answer: {exc}")
        yield configured, "configured"
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server(), "kafka"
        return
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu") / "broker.log")
    try:
        yield broker.start(), "tansu"
    finally:
        broker.stop()


@pytest.fixture(autouse=True)
def _kafka_only(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("kafka_only")
    if marker is None:
        return
    if request.getfixturevalue("broker_kind") == "tansu":
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
        pytest.skip(f"needs Apache Kafka semantics (Tansu lacks them): {reason}")


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Names for topics and groups that no other test uses."""
    return lambda base: f"{base}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
