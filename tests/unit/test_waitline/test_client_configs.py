"""Every Kafka client waitline creates is configured from ``Settings.as_librdkafka_dict()``.

The client classes are replaced by fakes that record their configuration; each command or
SDK path then runs as far as it creates its clients. Each configuration must carry the SASL
settings of ``WAITLINE_KAFKA`` and the password of ``WAITLINE_SASL_PASSWORD``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

import waitline.broker
import waitline.client
import waitline.dev
import waitline.processors.restore
import waitline.processors.runtime
import waitline.topics
import waitline.worker
from waitline.cli import main
from waitline.client import Client, Runner
from waitline.config import Settings
from waitline.processors.restore import Restorer
from waitline.processors.runtime import Worker

PASSWORD = "pw-from-the-environment"
SASL = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanisms": "SCRAM-SHA-256",
    "sasl.username": "waitline",
}


class FakeKafka:
    """Stands for Producer, Consumer and AdminClient: records each configuration."""

    configs: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    role = "client"

    def __init__(self, config: dict[str, Any], **_callbacks: Any) -> None:
        FakeKafka.configs.append((self.role, dict(config)))

    def list_topics(self, *_args: Any, **_kwargs: Any) -> object:
        return object()

    def produce(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def poll(self, *_args: Any) -> None:
        return None

    def flush(self, *_args: Any) -> int:
        return 0

    def assign(self, *_args: Any) -> None:
        return None

    def subscribe(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def seek(self, *_args: Any) -> None:
        return None

    def close(self) -> None:
        return None


def _fake(role: str) -> type[FakeKafka]:
    return type(f"Fake{role}", (FakeKafka,), {"role": role})


@pytest.fixture(autouse=True)
def sasl_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    FakeKafka.configs = []
    monkeypatch.setenv("WAITLINE_KAFKA", json.dumps(SASL))
    monkeypatch.setenv("WAITLINE_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("WAITLINE_BOOTSTRAP_SERVERS", "kafka.example:9093")
    monkeypatch.setenv("WAITLINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(waitline.broker, "AdminClient", _fake("probe"))


def _assert_configured(expected_roles: list[str]) -> None:
    assert [role for role, _ in FakeKafka.configs] == expected_roles
    for role, config in FakeKafka.configs:
        assert config["bootstrap.servers"] == "kafka.example:9093", role
        assert config["sasl.password"] == PASSWORD, role
        for name, value in SASL.items():
            assert config[name] == value, (role, name)


def test_send_probes_and_produces_with_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(waitline.client, "Producer", _fake("producer"))
    assert main(["send", "n", "k"]) == 0, capsys.readouterr().err
    _assert_configured(["probe", "producer"])


def test_topics_create_probes_and_administers_with_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("confluent_kafka.admin.AdminClient", _fake("admin"))
    monkeypatch.setattr(waitline.topics, "create_topics", lambda _admin, _topics: {})
    assert main(["topics", "create"]) == 0, capsys.readouterr().err
    _assert_configured(["probe", "admin"])


def test_the_worker_clients_get_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built: list[Worker] = []
    monkeypatch.setattr(waitline.worker, "AdminClient", _fake("admin"))
    monkeypatch.setattr(waitline.worker, "check_copartitioned", lambda _admin, _topics: 4)
    monkeypatch.setattr(waitline.worker, "check_broker_record_limits", lambda *_args: None)
    monkeypatch.setattr(Worker, "run", lambda self, _stop: built.append(self))
    monkeypatch.setattr(waitline.worker, "settle_heap", lambda: None)
    monkeypatch.setattr(waitline.worker.signal, "signal", lambda *_args: None)
    assert main(["worker"]) == 0, capsys.readouterr().err
    (worker,) = built
    # What Worker.run hands its producer, consumer and restore consumer.
    monkeypatch.setattr(waitline.processors.runtime, "Producer", _fake("worker producer"))
    monkeypatch.setattr(waitline.processors.runtime, "Consumer", _fake("worker consumer"))
    monkeypatch.setattr(waitline.processors.restore, "Consumer", _fake("restore consumer"))
    waitline.processors.runtime.Producer(worker._producer_config())
    waitline.processors.runtime.Consumer(worker._consumer_config())
    Restorer(worker.config.client, "changelog")._get_consumer()
    _assert_configured(["probe", "admin", "worker producer", "worker consumer", "restore consumer"])


def test_several_worker_processes_are_probed_with_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop = threading.Event()
    stop.set()  # the probe, then stop before a child starts
    monkeypatch.setattr(waitline.worker.signal, "signal", lambda *_args: None)
    monkeypatch.setattr(
        waitline.worker.multiprocessing, "get_context", lambda _method: _NoProcesses()
    )
    waitline.worker.run_workers(Settings(processes=2), stop)
    _assert_configured(["probe"])


class _NoProcesses:
    def Process(self, **_kwargs: Any) -> _NoProcess:
        return _NoProcess()


class _NoProcess:
    name = "none"
    pid = None
    sentinel = -1

    def start(self) -> None:
        return None

    def is_alive(self) -> bool:
        return False

    def join(self, *_args: Any) -> None:
        return None


def test_the_sdk_clients_get_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waitline.client, "Producer", _fake("sdk producer"))
    monkeypatch.setattr(waitline.client, "Consumer", _fake("sdk consumer"))
    client = Client()
    assert client.transport is not None
    client._open_resume_source(0)
    assert list(Runner(lambda _resume: None, group_id="runners").iter_resumes(0)) == []
    _assert_configured(["sdk producer", "sdk consumer", "sdk consumer"])


def test_dev_creates_topics_with_the_configured_client(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broker:
        def __init__(self, **_kwargs: Any) -> None:
            pass

        def start(self) -> str:
            return "kafka.example:9093"

        def stop(self) -> None:
            return None

    class Stop(Exception):
        pass

    def create_topics(_admin: object, _topics: object) -> dict[str, str]:
        raise Stop  # after the admin client, before a worker starts

    monkeypatch.setattr(waitline.dev, "EmbeddedBroker", Broker)
    monkeypatch.setattr(waitline.dev, "AdminClient", _fake("dev admin"))
    monkeypatch.setattr(waitline.dev, "create_topics", create_topics)
    monkeypatch.setattr(waitline.dev.signal, "signal", lambda *_args: None)
    with pytest.raises(Stop):
        waitline.dev.run_dev(workers=0)
    _assert_configured(["dev admin"])
