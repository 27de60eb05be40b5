"""A run-loop ``Worker`` without Kafka: configured for topics named ``t.*`` and 8 partitions,
with one open RocksDB store; the tests set the consumer and producer fakes they need (here too:
``FakeProducer``, ``FakeConsumer``, ``record``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, TopicPartition

from waitline.processors.correlation import Target
from waitline.processors.runtime import RuntimeConfig, Worker
from waitline.processors.store import PartitionStore
from waitline.schemas.keys import make_key, partition_for

TOPICS = {
    Target.EVENTS: "t.events",
    Target.WAIT_COMMANDS: "t.wait-commands",
    Target.RESUMES: "t.resumes",
    Target.DEAD_LETTERS: "t.dead-letters",
    Target.CHANGELOG: "t.changelog",
}


@contextmanager
def worker_with_store(tmp_path: Path, partition: int) -> Iterator[Worker]:
    """A worker owning ``partition``'s store (under ``tmp_path``), closed afterwards."""
    config = RuntimeConfig(client={}, group_id="g", state_dir=tmp_path, topics=TOPICS, partitions=8)
    worker = Worker(config)
    store = PartitionStore(tmp_path / "p", partition)
    store.open()
    worker.stores[partition] = store
    try:
        yield worker
    finally:
        store.close()


KEY = make_key("n", "k")
PART = partition_for(KEY, 8)  # the partition of KEY's records, and of the store

Delivery = Callable[[KafkaError | None, Any], None]


def record(target: Target, offset: int, body: dict[str, Any], ts: int | None = None) -> Message:
    """An input record of KEY in PART: ``body`` as JSON, timestamped ``ts`` (default: now)."""
    stamp = int(time.time() * 1000) if ts is None else ts
    return Message(topic=TOPICS[target], partition=PART, offset=offset, key=KEY,
                   value=json.dumps(body).encode(), timestamp=(1, stamp))  # fmt: skip


class FakeProducer:
    """Notes every produce (``sent``) and every produce and flush in order (``log``); a flush
    acknowledges everything produced so far, reporting ``failing`` topics' records as lost;
    producing to a ``raising`` topic raises."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, int, Delivery | None]] = []
        self.log: list[tuple[str, str]] = []  # ("produce", topic) or ("flush", "")
        self.failing: set[str] = set()
        self.raising: set[str] = set()
        self.flushes = 0
        self.polls = 0
        self._unacked: list[tuple[str, int, bytes | None, Delivery | None]] = []
        self._next_offset: dict[tuple[str, int], int] = {}

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        on_delivery: Delivery | None = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        if topic in self.raising:
            raise ValueError(f"cannot produce to {topic}")
        self.sent.append((topic, value, partition, on_delivery))
        self.log.append(("produce", topic))
        self._unacked.append((topic, partition, value, on_delivery))

    def flush(self, timeout: float) -> int:
        self.flushes += 1
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
        self.polls += 1
        return 0

    def since(self, mark: int) -> list[str]:
        """What happened after the ``mark``-th entry of the log, as short words."""
        words = {TOPICS[Target.CHANGELOG]: "changelog", TOPICS[Target.RESUMES]: "resume"}
        return [
            "flush" if what == "flush" else words.get(topic, topic)
            for what, topic in self.log[mark:]
        ]


class FakeConsumer:
    """Hands out the queued ``batches``, one per ``consume``; notes seeks and group commits,
    and, given a ``producer``, how many records it had been given at each ``consume``."""

    def __init__(self) -> None:
        self.batches: list[list[Message]] = []
        self.seeks: list[tuple[str, int, int]] = []
        self.commits: list[list[TopicPartition]] = []
        self.producer: FakeProducer | None = None
        self.produced_before_consume: list[int] = []

    def consume(self, size: int, timeout: float) -> list[Message]:
        if self.producer is not None:
            self.produced_before_consume.append(len(self.producer.sent))
        return self.batches.pop(0) if self.batches else []

    def poll(self, timeout: float) -> None:
        return None

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(offsets)

    def unassign(self) -> None:
        pass
