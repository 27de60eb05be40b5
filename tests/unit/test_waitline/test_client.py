"""The SDK against fakes of its two seams (Transport, ResumeSource): no broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from waitline.client import Client
from waitline.config import Settings
from waitline.errors import BrokerError, InvalidRecordError, WaitlineError, WaitTimeoutError
from waitline.schemas.keys import make_key, partition_for
from waitline.schemas.models import Event, ResumeCommand
from waitline.topics import Topics, load_topics

REPO = Path(__file__).resolve().parents[3]


class FakeTransport:
    """Records what would have been produced."""

    def __init__(self, undelivered: int = 0) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.undelivered = undelivered
        self.flushes = 0

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def flush(self, timeout: float) -> int:
        self.flushes += 1
        return self.undelivered

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(value) for _, _, value in self.sent]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeResumes:
    """Serves queued resume records; an idle poll returns None after `timeout` fake seconds."""

    def __init__(self, records: list[bytes], clock: FakeClock) -> None:
        self.records = list(records)
        self.clock = clock
        self.closed = False
        self.polls: list[float] = []

    def poll(self, timeout: float) -> bytes | None:
        self.polls.append(timeout)
        if self.records:
            return self.records.pop(0)
        self.clock.now += timeout
        return None

    def close(self) -> None:
        self.closed = True


def _resume(wait_id: str, outcome: str = "matched", run_id: str = "run-1") -> bytes:
    return ResumeCommand(
        resume_id=f"id-{wait_id}",
        wait_id=wait_id,
        run_id=run_id,
        outcome=outcome,  # type: ignore[arg-type]
        action="continue",
        registered_at=1,
        resolved_at=2,
    ).to_json()


@pytest.fixture
def topics() -> Topics:
    return load_topics(REPO / "topics.yaml", "test.")


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr("waitline.client.time.monotonic", clock)
    return clock


def _client(
    topics: Topics, transport: FakeTransport, source: FakeResumes | None = None
) -> tuple[Client, list[int]]:
    opened: list[int] = []

    def open_source(partition: int) -> FakeResumes:
        opened.append(partition)
        assert source is not None, "this test does not consume resumes"
        assert transport.sent == [], "the resume source opens before the wait is registered"
        return source

    return Client(Settings(), topics=topics, transport=transport, resume_source=open_source), opened


# -- producing ---------------------------------------------------------------------------------


def test_send_event(topics: Topics, transport: FakeTransport) -> None:
    client, _ = _client(topics, transport)
    event = client.send_event(
        "email.verified", "user:1", {"a": 1}, idempotency_key="i", ttl="1h", timestamp=42
    )
    ((topic, key, value),) = transport.sent
    assert topic == "test.events"
    assert key == make_key("email.verified", "user:1") == b"email.verified|user:1"
    assert json.loads(value) == {
        "eventId": event.event_id,
        "name": "email.verified",
        "correlationKey": "user:1",
        "data": {"a": 1},
        "idempotencyKey": "i",
        "ttl": "1h",
        "timestamp": 42,
    }
    assert Event.model_validate_json(value) == event


def test_send_event_fills_id_and_timestamp(topics: Topics, transport: FakeTransport) -> None:
    client, _ = _client(topics, transport)
    first = client.send_event("n", "k")
    second = client.send_event("n", "k", event_id="mine")
    assert first.event_id and first.event_id != second.event_id
    assert second.event_id == "mine"
    body = transport.bodies()[0]
    assert isinstance(body["timestamp"], int) and body["timestamp"] > 1_600_000_000_000
    assert body["data"] == {} and "ttl" not in body and "idempotencyKey" not in body


def test_register_wait(topics: Topics, transport: FakeTransport) -> None:
    client, _ = _client(topics, transport)
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
    ((topic, key, _),) = transport.sent
    assert (topic, key) == ("test.wait-commands", make_key("n", "k"))
    assert transport.bodies() == [
        {
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
    ]


def test_register_wait_defaults(topics: Topics, transport: FakeTransport) -> None:
    client, _ = _client(topics, transport)
    client.register_wait("w", run_id="r", name="n", correlation_key="k", timeout="1s")
    assert transport.bodies() == [
        {
            "type": "register",
            "waitId": "w",
            "runId": "r",
            "name": "n",
            "correlationKey": "k",
            "timeout": "1s",
            "onTimeout": "fail",
        }
    ]


def test_cancel_wait(topics: Topics, transport: FakeTransport) -> None:
    client, _ = _client(topics, transport)
    client.cancel_wait("run-1/w", name="n", correlation_key="k|2")
    ((topic, key, _),) = transport.sent
    assert (topic, key) == ("test.wait-commands", b"n|k|2")
    assert transport.bodies() == [
        {"type": "cancel", "waitId": "run-1/w", "name": "n", "correlationKey": "k|2"}
    ]


def test_invalid_input_fails_before_anything_is_sent(
    topics: Topics, transport: FakeTransport
) -> None:
    client, _ = _client(topics, transport)
    with pytest.raises(ValidationError):
        client.register_wait("w", run_id="r", name="n", correlation_key="k", timeout="soon")
    with pytest.raises(ValidationError):
        client.send_event("a|b", "k")
    with pytest.raises(ValidationError):
        client.cancel_wait("w", name="", correlation_key="k")
    assert transport.sent == []


def test_a_record_the_processor_would_refuse_for_its_size_is_not_sent(
    topics: Topics, transport: FakeTransport
) -> None:
    client, _ = _client(topics, transport)
    limit = client.settings.max_record_bytes
    with pytest.raises(InvalidRecordError, match="exceeds WAITLINE_MAX_RECORD_BYTES"):
        client.send_event("n", "k", {"blob": "x" * limit})
    with pytest.raises(InvalidRecordError):
        client.register_wait(
            "w", run_id="r", name="n", correlation_key="k", timeout="1s", metadata="x" * limit
        )
    assert transport.sent == []
    client.send_event("n", "k", {"blob": "x" * (limit - 1000)})  # under it: sent
    assert len(transport.sent) == 1


def test_flush_raises_when_records_stay_unacknowledged(topics: Topics) -> None:
    transport = FakeTransport(undelivered=2)
    client, _ = _client(topics, transport)
    client.send_event("n", "k")
    with pytest.raises(BrokerError, match="unacknowledged"):
        client.flush(1.0)


def test_no_io_until_first_use() -> None:
    # Neither topics.yaml nor Kafka are touched by the constructor.
    client = Client(Settings(topics_file=Path("/nonexistent/topics.yaml")))
    assert client.settings.topics_file == Path("/nonexistent/topics.yaml")
    with pytest.raises(WaitlineError, match="topics file not found"):
        _ = client.topics


# -- wait_for_event ------------------------------------------------------------------------------


def _wait(client: Client, wait_timeout: float | None = 5.0) -> ResumeCommand:
    return client.wait_for_event(
        "run-1/w",
        run_id="run-1",
        name="n",
        correlation_key="k",
        timeout="1h",
        wait_timeout=wait_timeout,
    )


def test_wait_for_event_returns_its_own_resume(
    topics: Topics, transport: FakeTransport, clock: FakeClock
) -> None:
    records = [b"garbage", _resume("someone-else"), b"{}", _resume("run-1/w", "timed_out")]
    source = FakeResumes(records, clock)
    client, opened = _client(topics, transport, source)
    resume = _wait(client)
    assert (resume.wait_id, resume.outcome) == ("run-1/w", "timed_out")
    assert opened == [partition_for(b"run-1", topics.resumes.partitions)]  # the run's partition
    assert source.closed
    assert transport.bodies()[0]["waitId"] == "run-1/w"
    assert transport.flushes >= 1  # the registration was flushed before waiting


def test_wait_for_event_ignores_other_waits_of_the_same_run(
    topics: Topics, transport: FakeTransport, clock: FakeClock
) -> None:
    source = FakeResumes([_resume("run-1/other"), _resume("run-1/w")], clock)
    client, _ = _client(topics, transport, source)
    assert _wait(client).wait_id == "run-1/w"
    assert source.records == []


def test_wait_for_event_gives_up_after_wait_timeout(
    topics: Topics, transport: FakeTransport, clock: FakeClock
) -> None:
    source = FakeResumes([_resume("other")], clock)
    client, _ = _client(topics, transport, source)
    start = clock.now
    with pytest.raises(WaitTimeoutError, match="still registered"):
        _wait(client, wait_timeout=2.0)
    assert clock.now - start == pytest.approx(2.0)  # waited exactly its bound, in polls
    assert all(0 <= t <= 0.5 for t in source.polls)
    assert source.closed


def test_wait_timeout_error_is_a_waitline_error() -> None:
    assert issubclass(WaitTimeoutError, WaitlineError)


def test_wait_for_event_closes_the_source_when_registration_fails(
    topics: Topics, transport: FakeTransport, clock: FakeClock
) -> None:
    source = FakeResumes([], clock)
    client, _ = _client(topics, transport, source)
    with pytest.raises(ValidationError):
        client.wait_for_event(
            "w", run_id="run-1", name="n", correlation_key="k", timeout="whenever"
        )
    assert source.closed and transport.sent == []


class _SeekRecorder:
    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []

    def seek(self, tp: Any) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))


def test_resume_readers_read_a_skipped_batch_again() -> None:
    """A fetch that skipped records (seen on Tansu) is read again once; a gap seen again is
    real (a transaction marker, say) and let through."""
    from confluent_kafka import Message, TopicPartition

    from waitline.gaps import OffsetGaps

    consumer = _SeekRecorder()
    gaps = OffsetGaps(consumer.seek)  # as the SDK's readers build it

    def msg(offset: int, partition: int = 0) -> Message:
        return Message(topic="r", partition=partition, offset=offset, value=b"{}")

    assert [gaps.admit(msg(o)) for o in (5, 6)] == [True, True]  # the first sets the start
    assert gaps.admit(msg(9)) is False  # 7 and 8 missing: seek back, skip this one
    assert consumer.seeks == [("r", 0, 7)]
    assert [gaps.admit(msg(o)) for o in (7, 8, 9)] == [True, True, True]  # they came
    assert gaps.admit(msg(11)) is False and gaps.admit(msg(11)) is True  # 10 is not there
    assert gaps.admit(msg(0, partition=1)) is True  # partitions are apart
    gaps.forget([TopicPartition("r", 0)])  # reassigned: continues wherever the group says
    assert gaps.admit(msg(40)) is True
    assert consumer.seeks == [("r", 0, 7), ("r", 0, 10)] and gaps.reread == 2


def test_the_sdk_imports_nothing_of_the_processor() -> None:
    """The SDK runs where the processor's dependencies (RocksDB, CEL) are not wanted."""
    import subprocess
    import sys

    code = (
        "import sys, waitline, waitline.client, waitline.aio, waitline.faust, waitline.resumes\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'processors'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
