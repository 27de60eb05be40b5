"""At-least-once, a batch's changelog is acknowledged by the next batch's flush: one flush per
batch. The order that matters still holds: a batch's outputs are acknowledged before its
changelog is produced, and its changelog before RocksDB holds it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from workerharness import PART, TOPICS, FakeConsumer, FakeProducer, record, worker_with_store

from waitline.processors.correlation import Target
from waitline.processors.runtime import Worker, WorkerError
from waitline.processors.store import PartitionStore, StoreState

CHANGELOG = TOPICS[Target.CHANGELOG]

WAIT = {"waitId": "w", "runId": "r", "name": "n", "correlationKey": "k", "timeout": "1h"}
EVENT = {"eventId": "e", "name": "n", "correlationKey": "k"}


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    with worker_with_store(tmp_path, PART) as worker:
        worker._producer = FakeProducer()  # type: ignore[assignment]
        worker._consumer = FakeConsumer()  # type: ignore[assignment]
        worker._restorer = _NoRestorer()  # type: ignore[assignment]  # for a revocation
        worker._next_timer_scan = float("inf")  # no timer scans unless a test asks for one
        yield worker


def _parts(worker: Worker) -> tuple[FakeProducer, FakeConsumer, PartitionStore]:
    return worker._producer, worker._consumer, worker.stores[PART]  # type: ignore[return-value]


def test_a_batch_reaches_rocksdb_with_the_next_batchs_flush(worker: Worker) -> None:
    producer, consumer, store = _parts(worker)
    consumer.batches = [
        [record(Target.WAIT_COMMANDS, 0, WAIT)],
        [record(Target.EVENTS, 0, EVENT)],
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
        [record(Target.WAIT_COMMANDS, 0, WAIT)],
        [record(Target.EVENTS, 0, EVENT)],
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


def test_a_revocation_writes_the_sealed_batch_before_the_store_closes(worker: Worker) -> None:
    producer, consumer, store = _parts(worker)
    consumer.batches = [[record(Target.WAIT_COMMANDS, 0, WAIT)]]
    worker.run_once()
    assert store.sealed_offsets == {"wait-commands": 1}
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
    consumer.batches = [[record(Target.WAIT_COMMANDS, 0, WAIT)]]
    worker.run_once()
    with pytest.raises(WorkerError, match="not delivered"):
        worker._on_revoke(consumer, [TopicPartition(TOPICS[Target.EVENTS], PART)])  # type: ignore[arg-type]
    assert PART not in worker.stores and store.status is StoreState.CLOSED


def test_a_batch_whose_changelog_was_not_all_produced_is_never_written(worker: Worker) -> None:
    producer, consumer, store = _parts(worker)
    producer.raising = {CHANGELOG}
    consumer.batches = [[record(Target.WAIT_COMMANDS, 0, WAIT)]]
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
    consumer.batches = [[record(Target.WAIT_COMMANDS, 0, late, registered)]]
    worker.run_once()
    assert store.sealed_offsets == {"wait-commands": 1}
    mark = len(producer.log)
    worker._next_timer_scan = 0.0
    worker.run_once()  # idle: the scan, then the flush that writes the batch
    assert producer.since(mark) == [TOPICS[Target.WAIT_COMMANDS], "flush"]


class _NoRestorer:
    def cancel(self, numbers: list[int]) -> None:
        pass
