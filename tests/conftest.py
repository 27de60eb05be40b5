"""The suite's one broker fixture, and a factory for unique names.

``kafka_bootstrap`` picks, in order:

1. the broker named by ``WAITLINE_TEST_BOOTSTRAP``: it must answer within 15 s, or every test
   that needs it FAILS (a broker you asked for is never silently replaced or skipped);
2. Apache Kafka in a testcontainers container, where a Docker engine answers;
3. an embedded Tansu broker (``waitline.broker.EmbeddedBroker``): the default here and in CI.

Tests marked ``kafka_only("why")`` need Apache Kafka semantics that Tansu lacks (see
docs/embedded-broker.md); they skip, with that reason, when the broker is Tansu.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Literal

import pytest
from confluent_kafka.admin import AdminClient

from waitline.broker import EmbeddedBroker, wait_for_broker
from waitline.errors import BrokerError

BrokerKind = Literal["tansu", "kafka", "configured"]

_KIND = pytest.StashKey[BrokerKind]()
_IS_TANSU = pytest.StashKey[bool]()
_TANSU_CLUSTER_ID = "tansu_cluster"  # what Tansu reports unless started with --cluster-id


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def _reports_tansu(bootstrap: str) -> bool:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return metadata.cluster_id == _TANSU_CLUSTER_ID


@pytest.fixture(scope="session")
def kafka_bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``bootstrap.servers`` of the broker the whole session uses."""
    stash = request.config.stash
    configured = os.environ.get("WAITLINE_TEST_BOOTSTRAP")
    if configured:
        try:
            wait_for_broker(
                configured, timeout=float(os.environ.get("WAITLINE_TEST_CONNECT_TIMEOUT", "15"))
            )
        except BrokerError as exc:
            pytest.fail(f"WAITLINE_TEST_BOOTSTRAP is set, but its broker does not answer: {exc}")
        stash[_KIND], stash[_IS_TANSU] = "configured", _reports_tansu(configured)
        yield configured
        return
    if _docker_engine_answers():
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:  # testcontainers < 4.10
            from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            stash[_KIND], stash[_IS_TANSU] = "kafka", False
            yield kafka.get_bootstrap_server()
        return
    log_path = tmp_path_factory.mktemp("tansu") / "broker.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        stash[_KIND], stash[_IS_TANSU] = "tansu", True
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def broker_kind(request: pytest.FixtureRequest, kafka_bootstrap: str) -> BrokerKind:
    """``"tansu"`` (embedded), ``"kafka"`` (testcontainers) or ``"configured"``."""
    return request.config.stash[_KIND]


@pytest.fixture(autouse=True)
def _skip_kafka_only_on_tansu(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("kafka_only")
    if marker is None:
        return
    request.getfixturevalue("kafka_bootstrap")
    if request.config.stash[_IS_TANSU]:
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
        pytest.skip(f"needs Apache Kafka semantics (Tansu lacks them): {reason}")


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name("events")`` -> ``"events-3f2a9c0d1e7b"``: topic and group names per test."""

    def make(prefix: str = "test") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make
