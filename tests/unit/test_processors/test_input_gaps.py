"""The run loop reads an input partition again where its offsets jump (a fetch that missed
records, seen on Tansu), once per gap, and accepts a gap that is there on the second read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Message, TopicPartition
from workerharness import TOPICS, worker_with_store

from processors.correlation import Target
from processors.runtime import Worker
from schemas.keys import partition_for

EVENTS, WAITS = TOPICS[Target.EVENTS], TOPICS[Target.WAIT_COMMANDS]
KEY = b"n|k"
PART = partition_for(KEY, 8)  # the events are in the partition their key belongs to


class FakeConsumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    with worker_with_store(tmp_path, PART) as worker:
        worker._consumer = FakeConsumer()  # type: ignore[assignment]
        yield worker


def _event(offset: int) -> Message:
    body = json.dumps({"eventId": f"e{offset}", "name": "n", "correlationKey": "k"}).encode()
    return Message(topic=EVENTS, partition=PART, offset=offset, key=KEY, value=body,
                   timestamp=(1, 1_000))  # fmt: skip


def _applied(worker: Worker, offsets: list[int]) -> dict[int, dict[str, int]]:
    emits, reached = worker._apply([_event(o) for o in offsets])
    assert not emits  # in its own partition: nothing forwarded, no waits to resume
    return reached


def test_a_gap_is_read_again_and_the_rest_of_the_batch_waits(worker: Worker) -> None:
    assert _applied(worker, [0, 1, 2]) == {PART: {"events": 3}}
    assert _applied(worker, [3, 7, 8]) == {PART: {"events": 4}}  # 4-6 missing: stop at 3
    assert worker._consumer.seeks == [(EVENTS, PART, 4)]  # type: ignore[union-attr]
    assert _applied(worker, [4, 5, 6, 7, 8]) == {PART: {"events": 9}}  # they came
    assert (worker.input_gaps, worker.input_gaps_recovered) == (1, 1)
    assert worker.processed == 9  # the two held back at the gap are counted when they come
    buffered = [e.seq for _, e in worker.stores[PART].state.iter_buffered()]
    assert buffered == list(range(9))  # every event applied once


def test_a_gap_seen_again_is_accepted(worker: Worker) -> None:
    _applied(worker, [0])
    assert _applied(worker, [2]) == {}  # offset 1 missing (say, a transaction marker)
    assert _applied(worker, [2, 3]) == {PART: {"events": 4}}  # the same gap: real
    assert worker._consumer.seeks == [(EVENTS, PART, 1)]  # type: ignore[union-attr]
    assert (worker.input_gaps, worker.input_gaps_recovered) == (1, 0)


def test_a_seek_sets_where_the_partition_resumes(worker: Worker) -> None:
    _applied(worker, [0, 1])
    worker._expect(PART, worker._sources[EVENTS], 0)  # a rewind to the store's offsets
    assert _applied(worker, [0, 1, 2]) == {PART: {"events": 3}}  # no gap: read again from 0
    assert worker.input_gaps == 0
