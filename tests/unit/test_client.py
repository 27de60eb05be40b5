"""The SDK against fakes of its two seams (Transport, ResumeSource): no broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.keys import make_key, partition_for
from schemas.models import ResumeCommand
from waitline.client import Client
from waitline.config import Settings
from waitline.errors import WaitTimeoutError
from waitline.topics import load_topics

REPO = Path(__file__).resolve().parents[2]


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, object]]] = []

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key, json.loads(value)))

    def flush(self, timeout: float) -> int:
        return 0


class FakeResumes:
    """Serves queued resume records; ``None`` when empty (an idle poll)."""

    def __init__(self, records: list[bytes]) -> None:
        self.records = list(records)
        self.closed = False
        self.polls = 0

    def poll(self, timeout: float) -> bytes | None:
        self.polls += 1
        return self.records.pop(0) if self.records else None

    def close(self) -> None:
        self.closed = True


def _resume(wait_id: str, outcome: str = "matched") -> bytes:
    return ResumeCommand(
        resume_id=f"id-{wait_id}",
        wait_id=wait_id,
        run_id="r",
        outcome=outcome,
        action="continue",
        registered_at=1,  # type: ignore[arg-type]
        resolved_at=2,
    ).to_json()


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


def _client(
    transport: FakeTransport, source: FakeResumes | None = None, opened: list[int] | None = None
) -> Client:
    topics = load_topics(REPO / "topics.yaml", "test.")

    def open_source(partition: int) -> FakeResumes:
        if opened is not None:
            opened.append(partition)
        assert source is not None
        return source

    return Client(Settings(), topics=topics, transport=transport, resume_source=open_source)


def test_send_event(transport: FakeTransport) -> None:
    event = _client(transport).send_event(
        "email.verified", "user:1", {"a": 1}, idempotency_key="i", ttl="1h"
    )
    ((topic, key, body),) = transport.sent
    assert topic == "test.events"
    assert key == make_key("email.verified", "user:1")
    assert body["eventId"] == event.event_id and body["idempotencyKey"] == "i"
    assert body["data"] == {"a": 1} and body["ttl"] == "1h"
    assert isinstance(body["timestamp"], int)


def test_register_and_cancel(transport: FakeTransport) -> None:
    client = _client(transport)
    client.register_wait(
        "run-1/w",
        run_id="run-1",
        name="n",
        correlation_key="k",
        timeout="24h",
        on_timeout="continue",
        if_="async.data.ok",
        context={"data": {}},
        lookback="0",
        metadata={"x": 1},
    )
    client.cancel_wait("run-1/w", name="n", correlation_key="k")
    (topic, key, reg), (_, ckey, cancel) = transport.sent
    assert topic == "test.wait-commands" and key == ckey == b"n|k"
    assert reg == {
        "type": "register",
        "waitId": "run-1/w",
        "runId": "run-1",
        "name": "n",
        "correlationKey": "k",
        "timeout": "24h",
        "onTimeout": "continue",
        "if": "async.data.ok",
        "context": {"data": {}},
        "lookback": "0",
        "metadata": {"x": 1},
    }
    assert cancel == {"type": "cancel", "waitId": "run-1/w", "name": "n", "correlationKey": "k"}


def test_wait_for_event_returns_its_own_resume(transport: FakeTransport) -> None:
    source = FakeResumes([b"garbage", _resume("someone-else"), _resume("run-1/w")])
    opened: list[int] = []
    resume = _client(transport, source, opened).wait_for_event(
        "run-1/w", run_id="run-1", name="n", correlation_key="k", timeout="1h", wait_timeout=5
    )
    assert resume.wait_id == "run-1/w"
    assert opened == [partition_for(b"run-1", 8)]  # the run's resume partition only
    assert source.closed
    assert transport.sent[0][2]["waitId"] == "run-1/w"  # registered after the source opened


def test_wait_for_event_gives_up_after_wait_timeout(transport: FakeTransport) -> None:
    source = FakeResumes([_resume("other")])
    with pytest.raises(WaitTimeoutError, match="still registered"):
        _client(transport, source).wait_for_event(
            "run-1/w", run_id="run-1", name="n", correlation_key="k", timeout="1h", wait_timeout=0.2
        )
    assert source.closed and source.polls >= 2


def test_invalid_input_fails_before_anything_is_sent(transport: FakeTransport) -> None:
    from pydantic import ValidationError

    client = _client(transport)
    with pytest.raises(ValidationError):
        client.register_wait("w", run_id="r", name="n", correlation_key="k", timeout="soon")
    with pytest.raises(ValidationError):
        client.send_event("a|b", "k")
    assert transport.sent == []


def test_settings_pass_secrets_to_librdkafka_only() -> None:
    settings = Settings(
        bootstrap_servers="b:9092", kafka={"security.protocol": "SASL_SSL"}, sasl_password="hunter2"
    )  # type: ignore[arg-type]
    assert settings.as_librdkafka_dict() == {
        "bootstrap.servers": "b:9092",
        "security.protocol": "SASL_SSL",
        "sasl.password": "hunter2",
    }
    assert "hunter2" not in repr(settings)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAITLINE_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("WAITLINE_KAFKA", '{"client.id": "x"}')
    monkeypatch.setenv("WAITLINE_EVENT_TTL", "3d")
    settings = Settings()
    assert settings.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.kafka == {"client.id": "x"}
    assert settings.ms("event_ttl") == 3 * 86_400_000
    monkeypatch.setenv("WAITLINE_EVENT_TTL", "forever")
    with pytest.raises(ValueError, match="bad duration"):
        Settings()
