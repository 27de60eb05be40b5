"""At-least-once, the run loop sends due timers' commands without a flush of their own: once
each, acknowledged by the next flush or poll, and again if one was not delivered."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message
from workerharness import (
    PART,
    TOPICS,
    Delivery,
    FakeConsumer,
    FakeProducer,
    record,
    worker_with_store,
)

from waitline.processors.correlation import Target
from waitline.processors.runtime import Worker


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    with worker_with_store(tmp_path, PART) as worker:
        consumer = FakeConsumer()
        consumer.producer = worker._producer = FakeProducer()  # type: ignore[assignment]
        worker._consumer = consumer  # type: ignore[assignment]
        # A wait whose 1 s timeout passed 4 s ago, applied and committed.
        wait = {"waitId": "w", "runId": "r", "name": "n", "correlationKey": "k", "timeout": "1s"}
        registered = int(time.time() * 1000) - 5_000
        _emits, offsets = worker._apply([record(Target.WAIT_COMMANDS, 0, wait, registered)])
        worker.stores[PART].commit(offsets[PART])
        yield worker


def _timer_commands(worker: Worker) -> list[tuple[str, bytes | None, int, Delivery | None]]:
    producer: FakeProducer = worker._producer  # type: ignore[assignment]
    return [sent for sent in producer.sent if sent[0] == TOPICS[Target.WAIT_COMMANDS]]


def _scan(worker: Worker) -> None:
    worker._next_timer_scan = 0.0  # the interval has passed
    worker._fire_timers()


def test_a_due_timer_is_sent_once_without_a_flush(worker: Worker) -> None:
    _scan(worker)
    _scan(worker)  # still due (its command is not read back yet): not sent again
    (command,) = _timer_commands(worker)
    assert json.loads(command[1] or b"")["waitId"] == "w" and command[2] == PART
    assert worker._producer.flushes == 0  # type: ignore[union-attr]


def test_a_timer_command_that_was_not_delivered_is_sent_again(worker: Worker) -> None:
    _scan(worker)
    (command,) = _timer_commands(worker)
    on_delivery = command[3]
    assert on_delivery is not None
    worker._timer_mark[PART + 1] = 123  # another partition's scan position
    failed = Message(topic=command[0], partition=command[2], value=command[1])
    on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), failed)
    assert worker._delivery_errors == []  # a lost timer command fails no batch
    assert worker._timer_mark[PART] <= json.loads(command[1] or b"")["deadline"]
    assert worker._timer_mark[PART + 1] == 123  # only its own partition goes again
    _scan(worker)
    assert len(_timer_commands(worker)) == 2
    _scan(worker)  # delivered this time (no report of a failure): once is enough
    assert len(_timer_commands(worker)) == 2


def test_an_idle_loop_sends_due_timers_and_serves_their_acknowledgements(
    worker: Worker,
) -> None:
    assert worker.run_once() == 0
    assert len(_timer_commands(worker)) == 1
    producer: FakeProducer = worker._producer  # type: ignore[assignment]
    assert producer.polls >= 1 and producer.flushes == 0
    # Sent before the loop takes its batch, while the last commit has left the overlay empty.
    consumer: FakeConsumer = worker._consumer  # type: ignore[assignment]
    assert consumer.produced_before_consume[0] == 1
