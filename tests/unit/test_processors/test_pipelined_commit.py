"""At-least-once, a batch's changelog is acknowledged by the next batch's flush: one flush per
batch. The order that matters still holds: a batch's outputs are acknowledged before its
changelog is produced, and its changelog before RocksDB holds it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition
from workerharness import TOPICS, worker_with_store

from processors.correlation import Target
from processors.runtime import Worker, WorkerError
from processors.store import PartitionStore, StoreState
from schemas.keys import make_key, partition_for

KEY = make_key("n", "k")
PART = partition_for(KEY, 8)
CHANGELOG = TOPICS[Target.CHANGELOG]
RESUMES = TOPICS[Target.RESUMES]

Delivery = Callable[[KafkaError | None, Any], None]


class AckingProducer:
    """Notes every produce and flush in order; a flush acknowledges everything produced so far
    (or reports ``failing`` topics' records as lost)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []  # ("produce", topic) or ("flush", "")
        self.failing: set[str] = set()  # their records are reported lost by the flush
        self.raising: set[str] = set()  # producing to them raises
        self._unacked: list[tuple[str, int, bytes | None, Delivery | None]] = []
        self._next_offset: dict[tuple[str, int], int] = {}

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        on_delivery: Delivery | None = None,
        headers: Any = None,
    ) -> None:
        if topic in self.raising:
            raise ValueError(f"cannot produce to {topic}")
        self.log.append(("produce", topic))
        self._unacked.append((topic, partition, value, on_delivery))

    def flush(self, timeout: float) -> int:
        self.log.append(("flush", ""))
        unacked, self._unacked = self._unacked, []
        for topic, partition, value, on_delivery in unacked:
            offset = self._next_offset.get((topic, partition), 0)
            self._next_offset[(topic, partition)] = offset + 1
            if on_delivery is not None:
                msg = Message(topic=topic, partition=partition, offset=offset, value=value)
                error = KafkaError(KafkaError._MSG_TIMED_OUT) if topic in self.failing else None
                on_delivery(error, msg)
        return 0

    def poll(self, timeout: float) -> int:
        return 0

    def since(self, mark: int) -> list[str]:
        """What happened after the ``mark``-th entry of the log, as short words."""
        words = {CHANGELOG: "changelog", RESUMES: "resume"}
        return [
            "flush" if what == "flush" else words.get(topic, topic)
            for what, topic in self.log[mark:]
        ]


class BatchConsumer:
    """Hands out the queued batches, one per ``consume``; notes seeks and group commits."""

    def __init__(self) -> None:
        self.batches: list[list[Message]] = []
        self.seeks: list[tuple[str, int, int]] = []
        self.commits: list[list[TopicPartition]] = []

    def consume(self, size: int, timeout: float) -> list[Message]:
        return self.batches.pop(0) if self.batches else []

    def poll(self, timeout: float) -> None:
        return None

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(offsets)

    def unassign(self) -> None:
        pass


def _record(target: Target, offset: int, body: dict[str, Any]) -> Message:
    now = int(time.time() * 1000)
    return Message(topic=TOPICS[target], partition=PART, offset=offset, key=KEY,
                   value=json.dumps(body).encode(), timestamp=(1, now))  # fmt: skip


WAIT = {"waitId": "w", "runId": "r", "name": "n", "correlationKey": "k", "timeout": "1h"}
EVENT = {"eventId": "e", "name": "n", "correlationKey": "k"}


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    with worker_with_store(tmp_path, PART) as worker:
        worker._producer = AckingProducer()  # type: ignore[assignment]
        worker._consumer = BatchConsumer()  # type: ignore[assignment]
        worker._next_timer_scan = float("inf")  # no timers in these tests
        yield worker


def _parts(worker: Worker) -> tuple[AckingProducer, BatchConsumer, PartitionStore]:
    return worker._producer, worker._consumer, worker.stores[PART]  # type: ignore[return-value]


def test_a_batch_reaches_rocksdb_with_the_next_batchs_flush(worker: Worker) -> None:
    producer, consumer, store = _parts(worker)
    consumer.batches = [
        [_record(Target.WAIT_COMMANDS, 0, WAIT)],
        [_record(Target.EVENTS, 0, EVENT)],
    ]

    assert worker.run_once() == 1
    # One flush (the batch's outputs: none), then the changelog, which nobody waits for yet.
    assert producer.since(0) == ["flush", "changelog", "changelog", "changelog"]
    assert store.offsets == {} and store.sealed_offsets == {"wait-commands": 1}
    assert store.state.get_wait("w") is not None  # the next batch reads the sealed one

    mark = len(producer.log)
    assert worker.run_once() == 1
    # The resume, then one flush acknowledging it and the first batch's changelog; then the
    # first batch is in RocksDB, and the second one's changelog goes out.
    after = producer.since(mark)
    assert after[:2] == ["resume", "flush"] and set(after[2:]) == {"changelog"}
    assert store.offsets == {"wait-commands": 1}
    assert store.sealed_offsets == {"events": 1, "wait-commands": 1}
    assert store.changelog_position == 3  # the first batch's three records
    assert consumer.commits == [[TopicPartition(TOPICS[Target.WAIT_COMMANDS], PART, 1)]]

    mark = len(producer.log)
    assert worker.run_once() == 0  # idle: nothing to overlap the last changelog with
    assert producer.since(mark) == ["flush"]
    assert store.offsets == {"events": 1, "wait-commands": 1} and store.sealed_offsets is None


def test_a_lost_changelog_fails_the_next_batch_and_both_are_read_again(worker: Worker) -> None:
    producer, consumer, store = _parts(worker)
    producer.failing = {CHANGELOG}
    consumer.batches = [
        [_record(Target.WAIT_COMMANDS, 0, WAIT)],
        [_record(Target.EVENTS, 0, EVENT)],
    ]
    worker.run_once()  # its changelog is not acknowledged yet: nothing has failed
    with pytest.raises(WorkerError, match="not delivered"):
        worker.run_once()
    assert store.offsets == {} and store.sealed_offsets is None and not store.dirty
    assert store.state.get_wait("w") is None  # neither batch is in the state
    assert {(topic, offset) for topic, _, offset in consumer.seeks} == {
        (TOPICS[Target.EVENTS], -2),  # OFFSET_BEGINNING: the store had no offsets yet
        (TOPICS[Target.WAIT_COMMANDS], -2),
    }


def test_a_revocation_writes_the_sealed_batch_before_the_store_closes(
    worker: Worker, tmp_path: Path
) -> None:
    producer, consumer, store = _parts(worker)
    consumer.batches = [[_record(Target.WAIT_COMMANDS, 0, WAIT)]]
    worker.run_once()
    assert store.sealed_offsets == {"wait-commands": 1}
    worker._restorer = _NoRestorer()  # type: ignore[assignment]
    worker._on_revoke(consumer, [TopicPartition(TOPICS[Target.EVENTS], PART)])  # type: ignore[arg-type]
    assert PART not in worker.stores and producer.since(0)[-1] == "flush"
    reopened = PartitionStore(store.path, PART)
    reopened.open()
    try:
        assert reopened.offsets == {"wait-commands": 1}
        assert reopened.state.get_wait("w") is not None
    finally:
        reopened.close()


def test_a_revocation_whose_flush_fails_still_closes_the_store(worker: Worker) -> None:
    producer, consumer, store = _parts(worker)
    producer.failing = {CHANGELOG}
    consumer.batches = [[_record(Target.WAIT_COMMANDS, 0, WAIT)]]
    worker.run_once()
    worker._restorer = _NoRestorer()  # type: ignore[assignment]
    with pytest.raises(WorkerError, match="not delivered"):
        worker._on_revoke(consumer, [TopicPartition(TOPICS[Target.EVENTS], PART)])  # type: ignore[arg-type]
    assert PART not in worker.stores and store.status is StoreState.CLOSED


def test_a_batch_whose_changelog_was_not_all_produced_is_never_written(worker: Worker) -> None:
    producer, consumer, store = _parts(worker)
    producer.raising = {CHANGELOG}
    consumer.batches = [[_record(Target.WAIT_COMMANDS, 0, WAIT)]]
    with pytest.raises(ValueError, match="cannot produce"):
        worker.run_once()
    worker._settle()  # as a stop does after the loop ended
    assert store.offsets == {} and store.sealed_offsets is None and not store.dirty


def test_an_overdue_timer_goes_with_the_next_scan_before_its_batch_is_written(
    worker: Worker,
) -> None:
    """A registration that arrives after its deadline (a backlog) writes a timer below where
    the last scan ended; the next scan starts there, reading the sealed batch."""
    producer, consumer, store = _parts(worker)
    worker._next_timer_scan = 0.0
    worker.run_once()  # an empty scan: the partition's timers are sent up to now
    registered = int(time.time() * 1000) - 5_000  # its 1 s timeout passed 4 s ago
    late = {**WAIT, "timeout": "1s"}
    record = Message(topic=TOPICS[Target.WAIT_COMMANDS], partition=PART, offset=0, key=KEY,
                     value=json.dumps(late).encode(), timestamp=(1, registered))  # fmt: skip
    consumer.batches = [[record]]
    worker._next_timer_scan = 0.0
    worker.run_once()
    assert store.sealed_offsets == {"wait-commands": 1}
    mark = len(producer.log)
    worker._next_timer_scan = 0.0
    worker.run_once()  # idle: the scan, then the flush that writes the batch
    assert producer.since(mark) == [TOPICS[Target.WAIT_COMMANDS], "flush"]


class _NoRestorer:
    def cancel(self, numbers: list[int]) -> None:
        pass
