"""The run loop reads an input partition again where its offsets jump (a fetch that missed
records, seen on Tansu), once per gap, and accepts a gap that is there on the second read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Message
from workerharness import PART, TOPICS, FakeConsumer, record, worker_with_store

from waitline.processors.correlation import Target
from waitline.processors.runtime import Worker

EVENTS, WAITS = TOPICS[Target.EVENTS], TOPICS[Target.WAIT_COMMANDS]


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    with worker_with_store(tmp_path, PART) as worker:
        worker._consumer = FakeConsumer()  # type: ignore[assignment]
        yield worker


def _event(offset: int) -> Message:
    body = {"eventId": f"e{offset}", "name": "n", "correlationKey": "k"}
    return record(Target.EVENTS, offset, body, 1_000)


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
