"""The worker: the one place that owns the Kafka consumer and producer.

The run loop reads top to bottom: poll → process → publish → commit → fire due timers →
purge. Partition N of ``events`` and partition N of ``wait-commands`` form one task with one
RocksDB store (``range`` assignment keeps equal partition numbers on one member).

Commit protocol (at-least-once), once per loop iteration:

1. Consume up to ``batch_size`` records from the assigned partitions.
2. Apply each record through the core to its partition's overlay (read-your-writes buffer);
   collect the output records. Nothing is written to RocksDB or Kafka yet.
3. Produce every output record and ``flush`` the producer; any delivery error stops the
   worker before step 4, so the batch will be read and applied again.
4. For each touched partition, write the overlay's changes and the next input offsets in one
   RocksDB ``WriteBatch``. The store now says the batch happened, and its outputs are acked.
5. Commit the same offsets to the consumer group (asynchronously; informational only: on
   assignment the worker seeks to the offsets in its store, not the group's).

A crash before step 4 replays the batch: the core is deterministic, so the outputs are the
same records with the same ``resumeId``. A crash after step 4 replays nothing.

Timers: after each commit the loop asks every store for deadlines that passed on the wall
clock and appends a ``timer`` command for each to the wait-commands partition of the same
number. The wait resolves when that command is processed (SPEC §2.6), so a replay of the log
replays the decision.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from processors.correlation import CoreSettings, Correlator, Emit, InputRecord, Source, Target
from processors.store import PartitionStore
from schemas.keys import partition_for

__all__ = ["RuntimeConfig", "Worker", "WorkerError"]

log = logging.getLogger("waitline.worker")


class WorkerError(RuntimeError):
    """A fatal error: the worker stops without committing the current batch."""


@dataclass(frozen=True)
class RuntimeConfig:
    """What the run loop needs; built from ``waitline.config.Settings`` by the CLI."""

    client: dict[str, Any]
    group_id: str
    state_dir: Path
    topics: dict[Target, str]
    partitions: int
    core: CoreSettings = field(default_factory=CoreSettings)
    batch_size: int = 5000
    timer_batch: int = 10_000
    purge_interval_ms: int = 10_000
    poll_timeout: float = 0.1


class Worker:
    """A consumer-group member that correlates the partitions it is assigned."""

    def __init__(self, config: RuntimeConfig, core: Correlator | None = None) -> None:
        self.config = config
        self.core = core or Correlator(config.core)
        self.stores: dict[int, PartitionStore] = {}
        self.processed = 0
        self._sources = {
            config.topics[Target.EVENTS]: Source.EVENTS,
            config.topics[Target.WAIT_COMMANDS]: Source.WAIT_COMMANDS,
        }
        self._sent_timers: dict[int, set[bytes]] = {}
        self._last_purge = 0.0
        self._delivery_errors: list[str] = []
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self.on_assigned: Callable[[list[int]], None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; then commit, close the stores and leave the group."""
        self._consumer = Consumer(self._consumer_config())
        self._producer = Producer(self._producer_config())
        self._consumer.subscribe(
            list(self._sources), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        log.info("worker started group=%s topics=%s", self.config.group_id, list(self._sources))
        try:
            while not stop.is_set():
                self.run_once()
        finally:
            self._shutdown()

    def run_once(self) -> int:
        """One loop iteration; returns the number of input records applied."""
        assert self._consumer is not None
        messages = self._consumer.consume(self.config.batch_size, self.config.poll_timeout)
        emits, offsets = self._apply(messages)
        if offsets:
            self._publish(emits)
            self._commit(offsets)
        self._fire_timers()
        self._maybe_purge()
        return len(messages)

    def _shutdown(self) -> None:
        try:
            if self._producer is not None:
                self._producer.flush(10)
            if self._consumer is not None:
                self._consumer.close()  # revokes: stores are closed in _on_revoke
        finally:
            for store in self.stores.values():
                store.close()
            self.stores.clear()
            log.info("worker stopped after %d records", self.processed)

    # -- steps ---------------------------------------------------------------------------------

    def _apply(self, messages: list[Message]) -> tuple[list[Emit], dict[int, dict[str, int]]]:
        emits: list[Emit] = []
        offsets: dict[int, dict[str, int]] = {}
        now_ms = int(time.time() * 1000)
        partitions = self.config.partitions
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise WorkerError(f"fatal consumer error: {error.str()}")
                log.warning("consumer error: %s", error.str())
                continue
            source = self._sources[msg.topic() or ""]
            partition, offset = msg.partition() or 0, msg.offset() or 0
            store = self.stores.get(partition)
            if store is None:  # revoked while the batch was in flight
                continue
            key = msg.key()
            headers = _headers(msg)
            target = partition_for(key, partitions) if key is not None else partition
            if target != partition:
                # Produced with another partitioner: forward to where the pair lives.
                back = Target.WAIT_COMMANDS if source is Source.WAIT_COMMANDS else Target.EVENTS
                emits.append(Emit(back, key, msg.value(), headers, target))
            else:
                _, ts = msg.timestamp()
                record = InputRecord(
                    source, key, msg.value(), ts if ts > 0 else now_ms, partition, offset, headers
                )
                emits.extend(self.core.process(store.state, record))
            offsets.setdefault(partition, {})[source.value] = offset + 1
        self.processed += len(messages)
        return emits, offsets

    def _publish(self, emits: list[Emit]) -> None:
        producer = self._producer
        assert producer is not None
        topics = self.config.topics
        for emit in emits:
            topic = topics[emit.target]
            kwargs: dict[str, Any] = {"on_delivery": self._on_delivery}
            if emit.partition is not None:
                kwargs["partition"] = emit.partition
            if emit.headers:
                kwargs["headers"] = list(emit.headers)
            while True:
                try:
                    producer.produce(topic, emit.value, emit.key, **kwargs)
                    break
                except BufferError:
                    producer.poll(0.05)
        while producer.flush(5.0) > 0:
            log.warning("waiting for the broker to acknowledge outputs")
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise WorkerError(f"{len(errors)} outputs were not delivered: {errors[0]}")

    def _commit(self, offsets: dict[int, dict[str, int]]) -> None:
        assert self._consumer is not None
        group_offsets = []
        for partition, by_source in offsets.items():
            store = self.stores.get(partition)
            if store is None:
                continue
            store.commit(by_source)
            for source_name, next_offset in by_source.items():
                topic = self.config.topics[Target(source_name)]
                group_offsets.append(TopicPartition(topic, partition, next_offset))
        if group_offsets:
            try:
                self._consumer.commit(offsets=group_offsets, asynchronous=True)
            except Exception as exc:  # informational only, see the module docstring
                log.debug("group offset commit failed: %s", exc)

    def _fire_timers(self) -> None:
        now = int(time.time() * 1000)
        emits: list[Emit] = []
        for partition, store in self.stores.items():
            due = self.core.due_timers(store.state, now, partition, self.config.timer_batch)
            # A timer command is sent once; it stays due until the worker reads it back.
            sent = self._sent_timers.get(partition, set())
            live = {emit.value or b"" for emit in due}
            emits.extend(emit for emit in due if emit.value not in sent)
            self._sent_timers[partition] = live
        if emits:
            self._publish(emits)

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if (now - self._last_purge) * 1000 < self.config.purge_interval_ms:
            return
        self._last_purge = now
        wall = int(time.time() * 1000)
        for store in self.stores.values():
            removed = self.core.purge(store.state, wall, 100_000)
            if removed:
                store.commit({})
                log.info("purged %d expired entries from partition %d", removed, store.partition)

    # -- rebalancing ---------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            store = self.stores.get(tp.partition)
            if store is None:
                store = PartitionStore(self._store_path(tp.partition), tp.partition)
                store.open()
                self.stores[tp.partition] = store
            source = self._sources[tp.topic]
            tp.offset = store.offsets.get(source.value, OFFSET_BEGINNING)
        consumer.assign(partitions)
        numbers = sorted({tp.partition for tp in partitions})
        log.info("assigned partitions %s", numbers)
        if self.on_assigned is not None:
            self.on_assigned(numbers)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._producer is not None:
            self._producer.flush(10)
        for number in sorted({tp.partition for tp in partitions}):
            store = self.stores.pop(number, None)
            if store is not None:
                store.close()
            self._sent_timers.pop(number, None)
        consumer.unassign()
        log.info("revoked partitions %s", sorted({tp.partition for tp in partitions}))

    # -- configuration -------------------------------------------------------------------------

    def _store_path(self, partition: int) -> Path:
        return self.config.state_dir / self.config.group_id / f"partition-{partition}"

    def _consumer_config(self) -> dict[str, Any]:
        return {
            "group.id": self.config.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 10000,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 50,
            **self.config.client,
        }

    def _producer_config(self) -> dict[str, Any]:
        return {
            "enable.idempotence": True,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            **self.config.client,
        }

    def _on_delivery(self, error: KafkaError | None, msg: Message) -> None:
        if error is not None:
            self._delivery_errors.append(f"{msg.topic()}: {error.str()}")


def _headers(msg: Message) -> tuple[tuple[str, bytes], ...]:
    raw = msg.headers()
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple(
        (name, value if isinstance(value, bytes) else (value or "").encode())
        for name, value in items
    )
