"""The run loop's last lines of defence: an output refused for what it is becomes a reference
in the dead-letter topic instead of a batch that fails forever; a batch that runs long is cut
and its rest read again; forwarded records keep their headers, time and origin."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message
from workerharness import KEY, PART, TOPICS, FakeConsumer, FakeProducer, record, worker_with_store

from waitline.processors.correlation import HEADER_ORIGIN, Emit, Target
from waitline.processors.limits import producer_max_bytes
from waitline.processors.runtime import Worker, _headers

DEAD, RESUMES = TOPICS[Target.DEAD_LETTERS], TOPICS[Target.RESUMES]


class RefusingProducer(FakeProducer):
    """Refuses records over ``limit`` bytes at produce (as librdkafka does), or, for topics in
    ``refused_later``, in their delivery report (as a broker does); notes each produce whole."""

    def __init__(self, limit: int = 1_000) -> None:
        super().__init__()
        self.limit = limit
        self.refused_later: set[str] = set()
        self.records: list[dict[str, Any]] = []

    def produce(self, topic: str, value: Any, key: Any, partition: int, on_delivery: Any = None,
                timestamp: int = 0, headers: Any = None) -> None:  # fmt: skip
        if len(value or b"") > self.limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.records.append({"topic": topic, "key": key, "value": value, "headers": headers,
                             "timestamp": timestamp, "partition": partition})  # fmt: skip
        super().produce(topic, value, key, partition, on_delivery, timestamp, headers)

    def flush(self, timeout: float) -> int:
        unacked, self._unacked = self._unacked, []
        kept = []
        for topic, partition, value, on_delivery in unacked:
            if topic in self.refused_later and on_delivery is not None:
                msg = Message(topic=topic, partition=partition, value=value, key=KEY)
                on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), msg)
            else:
                kept.append((topic, partition, value, on_delivery))
        self._unacked = kept
        return super().flush(timeout)


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    with worker_with_store(tmp_path, PART) as worker:
        worker._consumer = FakeConsumer()  # type: ignore[assignment]
        worker._producer = RefusingProducer()  # type: ignore[assignment]
        yield worker


def _producer(worker: Worker) -> RefusingProducer:
    producer = worker._producer
    assert isinstance(producer, RefusingProducer)
    return producer


def test_an_output_refused_at_produce_is_dead_lettered_by_reference(worker: Worker) -> None:
    big = Emit(Target.RESUMES, b"run-1", b"x" * 5_000)
    small = Emit(Target.RESUMES, b"run-2", b"{}")
    worker._produce([big, small])
    worker._flush()  # does not raise: the batch goes on
    producer = _producer(worker)
    assert [(r["topic"], r["key"]) for r in producer.records] == [
        (DEAD, b"run-1"),
        (RESUMES, b"run-2"),
    ]
    headers = dict(producer.records[0]["headers"])
    assert b"refused" in headers["waitline.error"] and headers["waitline.size"] == b"5000"
    assert producer.records[0]["value"] is None
    assert worker.refused_outputs == 1


def test_other_delivery_errors_still_fail_the_batch(worker: Worker) -> None:
    _producer(worker).failing.add(RESUMES)
    worker._produce([Emit(Target.RESUMES, b"run-1", b"{}")])
    with pytest.raises(Exception, match="not delivered"):
        worker._flush()


def test_a_forwarded_record_keeps_its_time_and_headers_and_names_its_origin(worker: Worker) -> None:
    other = (PART + 1) % 8
    body = json.dumps({"eventId": "e", "name": "n", "correlationKey": "k"}).encode()
    headers = [("trace", None), (HEADER_ORIGIN, b"forged")]
    msg = Message(topic=TOPICS[Target.EVENTS], partition=other, offset=5, key=KEY, value=body,
                  timestamp=(1, 1234), headers=headers)  # fmt: skip
    worker.stores[other] = worker.stores[PART]
    try:
        emits, _ = worker._apply([msg])
    finally:
        del worker.stores[other]
    (forward,) = emits
    assert (forward.target, forward.partition, forward.timestamp) == (Target.EVENTS, PART, 1234)
    assert forward.headers == (("trace", None), (HEADER_ORIGIN, f"events/{other}/5".encode()))


def test_header_values_round_trip() -> None:
    assert _headers([("a", None), ("b", b""), ("c", b"x")]) == (
        ("a", None),
        ("b", b""),
        ("c", b"x"),
    )
    assert _headers({"a": None, "b": "s"}) == (("a", None), ("b", b"s"))


def test_the_producer_has_room_for_the_largest_output(worker: Worker) -> None:
    limit = producer_max_bytes(worker.config.core.max_record_bytes)
    assert worker._producer_config()["message.max.bytes"] == limit
    worker.config = dataclasses.replace(worker.config, client={"message.max.bytes": limit * 2})
    assert worker._producer_config()["message.max.bytes"] == limit * 2  # never less


def test_an_output_the_broker_refuses_fails_the_batch(worker: Worker) -> None:
    """Only a refusal before the record is queued is taken as final: a broker's may be about a
    whole batch of records, or (exactly-once) leave the transaction unusable."""
    _producer(worker).refused_later.add(RESUMES)
    worker._produce([Emit(Target.RESUMES, b"run-1", b"{}")])
    with pytest.raises(Exception, match="not delivered"):
        worker._flush()
    assert worker.refused_outputs == 0


class StepClock:
    """``time.monotonic`` for the run loop: each call one second later than the one before."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _events(offsets: list[int]) -> list[Message]:
    body = {"name": "n", "correlationKey": "k"}
    return [record(Target.EVENTS, o, {"eventId": f"e{o}", **body}, 1) for o in offsets]


def test_a_batch_over_its_time_budget_is_cut_and_its_rest_read_again(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("waitline.processors.runtime.time.monotonic", StepClock())
    worker.config = dataclasses.replace(worker.config, apply_budget_ms=127_000)  # 127 records
    batch = _events(list(range(300)))
    _, reached = worker._apply(batch)
    assert reached == {PART: {"events": 128}}
    assert worker._consumer.seeks == [(TOPICS[Target.EVENTS], PART, 128)]  # type: ignore[union-attr]
    _, reached = worker._apply(batch[128:256])  # the rest comes again, in order
    assert reached == {PART: {"events": 256}}
    assert worker.processed == 256


def test_a_cut_batch_does_not_skip_a_gap_being_read_again(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("waitline.processors.runtime.time.monotonic", StepClock())
    worker.config = dataclasses.replace(worker.config, apply_budget_ms=127_000)
    _, reached = worker._apply(_events([*range(127), *range(130, 200)]))  # 127-129 missing
    assert reached == {PART: {"events": 127}}
    assert worker._consumer.seeks == [(TOPICS[Target.EVENTS], PART, 127)]  # type: ignore[union-attr]


def test_a_record_the_core_raises_on_is_dead_lettered_and_the_batch_goes_on(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = worker.core.process

    def process(state: Any, rec: Any) -> Any:
        if rec.offset == 1:
            raise RuntimeError("a defect")
        return original(state, rec)

    monkeypatch.setattr(worker.core, "process", process)
    emits, reached = worker._apply(_events([0, 1, 2]))
    assert reached == {PART: {"events": 3}}
    (dead,) = emits
    assert dead.target is Target.DEAD_LETTERS and dead.value is not None
    assert dict(dead.headers)["waitline.error"] == b"processing failed: RuntimeError: a defect"
    assert worker.failed_records == 1


def test_a_timer_not_acted_on_is_sent_again_until_its_wait_resolves(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = StepClock()
    monkeypatch.setattr("waitline.processors.runtime.time.monotonic", clock)
    body = {"waitId": "w", "runId": "r", "name": "n", "correlationKey": "k", "timeout": "1ms"}
    emits, _ = worker._apply([record(Target.WAIT_COMMANDS, 0, body, 1_000)])
    assert emits == []
    worker._fire_timers()  # sent: the wait's deadline passed long ago
    producer = _producer(worker)
    assert [r["topic"] for r in producer.records] == [TOPICS[Target.WAIT_COMMANDS]]
    command = producer.records[0]["value"]
    clock.now += 10  # not read back (say, stamped before its deadline by the broker)
    worker._next_timer_scan = 0.0
    worker._fire_timers()
    assert [r["value"] for r in producer.records] == [command, command]
    # Read back and acted on: the wait resolved, the command is forgotten.
    timer = Message(topic=TOPICS[Target.WAIT_COMMANDS], partition=PART, offset=1, key=KEY,
                    value=command, timestamp=(1, 5_000))  # fmt: skip
    emits, _ = worker._apply([timer])
    assert [e.target for e in emits] == [Target.RESUMES]
    clock.now += 10
    worker._next_timer_scan = 0.0
    worker._fire_timers()
    assert len(producer.records) == 2 and worker._unresolved[PART] == {}
