"""Restore applies closed changelog batches, and refuses a batch written in another layout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from waitline.processors.restore import RestoreError, Restorer, _Run
from waitline.processors.store import OFFSETS, PartitionStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PartitionStore]:
    store = PartitionStore(tmp_path / "p0", 0)
    store.open()
    yield store
    store.close()


def _feed(run: _Run, records: list[tuple[bytes, bytes | None]]) -> None:
    for offset, (key, value) in enumerate(records):
        run.add(key, value, offset)


def test_closed_batches_are_applied_and_an_open_one_is_not(store: PartitionStore) -> None:
    run = _Run(store, None)
    _feed(run, [(b"mx", b"1"), (OFFSETS, b'{"events": 3}'), (b"my", b"2")])
    stats = run.finish()
    assert (stats.batches_applied, stats.dropped_records) == (1, 1)
    assert store.state.get_meta("x") == b"1" and store.state.get_meta("y") is None
    assert store.offsets == {"events": 3} and store.changelog_position == 2


def test_a_batch_of_another_layout_is_refused(store: PartitionStore) -> None:
    """A changelog written in layout 1 (batches closed by `m offsets`) would be misread: the
    `r` tombstones ignored, the event bodies not found. The restore stops and says why; the
    closing key is in every batch, and compaction keeps the last record of each key."""
    run = _Run(store, None)
    with pytest.raises(RestoreError, match="another state layout"):
        _feed(run, [(b"rw1", b"\0" * 8 + b"{}"), (b"moffsets", b'{"wait-commands": 1}')])
    assert store.offsets == {}  # nothing applied


def test_a_batch_of_layout_2_is_refused(store: PartitionStore) -> None:
    """Layout 2 kept a pair's events in one ``e`` list value: read as layout 3 it would be
    misread. Its batches close with ``m offsets@2``."""
    run = _Run(store, None)
    with pytest.raises(RestoreError, match=r"another state layout.*offsets@2"):
        _feed(run, [(b"en|k", b"[[1,2,3]]"), (b"moffsets@2", b'{"events": 1}')])
    assert store.offsets == {} and store.state.events_of(b"n|k") == []


class _AssigningConsumer:
    """What the restorer's consumer is told to read."""

    def __init__(self) -> None:
        self.assigned: list[int] = []

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = sorted(tp.partition for tp in partitions)

    def unassign(self) -> None:
        self.assigned = []


def test_cancel_stops_every_partition_named(tmp_path: Path) -> None:
    """Revoked mid-restore: every revoked partition stops restoring, not only the first still
    running (a restore that finished later for a partition the worker no longer held killed
    the worker in a chaos run)."""
    stores = [PartitionStore(tmp_path / f"p{n}", n) for n in range(4)]
    restorer = Restorer({}, "changelog")
    consumer = _AssigningConsumer()
    restorer._consumer = consumer  # type: ignore[assignment]
    try:
        for store in stores:
            store.open()
        restorer.begin(stores, None)
        assert consumer.assigned == [0, 1, 2, 3]
        restorer.cancel([0, 1, 2])  # suppose 0 had finished: cancel([0]) alone changes nothing
        assert restorer.restoring == [3] and consumer.assigned == [3]
        restorer.begin([], None)
        restorer.cancel([3, 9])
        assert restorer.restoring == [] and consumer.assigned == []
    finally:
        for store in stores:
            store.close()
