"""Bring a partition's store up to date from its changelog partition.

Every commit appends the batch's changed keys to ``changelog`` partition N, closed by the
store's ``offsets`` record (the input offsets the batch reached). Restore reads from the
store's ``changelog_position`` to the end of the partition (the partition-EOF event, never
ListOffsets, which the embedded broker gets wrong) and applies whole batches only:

- records after the last closing ``offsets`` record belong to a batch whose commit did not
  finish; they are dropped (their input is read and applied again);
- with ``committed`` (exactly-once mode), a batch whose offsets go beyond the consumer group's
  committed offsets belongs to an aborted or unfinished transaction and is dropped too, even
  on a broker that shows aborted records to ``read_committed`` readers.

An intact local store reads little or nothing; an empty one reads the whole partition.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from processors.store import OFFSETS, PartitionStore

__all__ = ["RestoreError", "RestoreStats", "Restorer"]

log = logging.getLogger("waitline.restore")


class RestoreError(RuntimeError):
    """The changelog could not be read to its end."""


@dataclass(frozen=True)
class RestoreStats:
    partition: int
    records: int
    batches_applied: int
    dropped_records: int
    seconds: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class Restorer:
    """Reads changelog partitions with a consumer outside the group (no rebalances)."""

    def __init__(self, client: dict[str, Any], topic: str, idle_timeout: float = 60.0) -> None:
        self.topic = topic
        self.idle_timeout = idle_timeout
        self._client = client
        self._consumer: Consumer | None = None

    def _get_consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **self._client,
                    "group.id": f"waitline-restore-{uuid.uuid4()}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                    "fetch.max.bytes": 64 * 1024 * 1024,
                    "max.partition.fetch.bytes": 16 * 1024 * 1024,
                    "queued.max.messages.kbytes": 256 * 1024,
                    "fetch.wait.max.ms": 10,
                }
            )
        return self._consumer

    def restore(
        self, stores: list[PartitionStore], committed: dict[int, dict[str, int]] | None
    ) -> list[RestoreStats]:
        """Restore every store in ``stores`` (read in parallel), each to its partition's end."""
        if not stores:
            return []
        consumer = self._get_consumer()
        started = time.monotonic()
        runs = {store.partition: _Run(store) for store in stores}
        consumer.assign(
            [TopicPartition(self.topic, s.partition, s.changelog_position) for s in stores]
        )
        open_partitions = set(runs)
        last_progress = time.monotonic()
        try:
            while open_partitions:
                messages = consumer.consume(10_000, 0.5)
                if not messages and time.monotonic() - last_progress > self.idle_timeout:
                    raise RestoreError(
                        f"no end of {self.topic} partitions {sorted(open_partitions)} "
                        f"after {self.idle_timeout:g}s"
                    )
                for msg in messages:
                    last_progress = time.monotonic()
                    run = runs[msg.partition() or 0]
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            run.finish()
                            open_partitions.discard(run.store.partition)
                            continue
                        raise RestoreError(f"reading {self.topic}: {error.str()}")
                    limits = (
                        committed.get(run.store.partition, {}) if committed is not None else None
                    )
                    run.add(msg.key(), msg.value(), msg.offset() or 0, limits)
        finally:
            consumer.unassign()
        elapsed = time.monotonic() - started
        out = []
        for run in runs.values():
            stats = RestoreStats(
                run.store.partition, run.records, run.batches, run.dropped, elapsed
            )
            if run.records:
                log.info(
                    "restored partition %d: %d changelog records, %d batches, %d dropped",
                    stats.partition,
                    stats.records,
                    stats.batches_applied,
                    stats.dropped_records,
                )
            out.append(stats)
        return out

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class _Run:
    """One partition's restore: the open batch, closed batches waiting to be written."""

    def __init__(self, store: PartitionStore) -> None:
        self.store = store
        self.pending: list[tuple[bytes, bytes | None]] = []
        self.ready: list[tuple[bytes, bytes | None]] = []
        self.position = store.changelog_position
        self.records = self.batches = self.dropped = 0

    def add(
        self, key: bytes | None, value: bytes | None, offset: int, limits: dict[str, int] | None
    ) -> None:
        self.records += 1
        if key is None:
            return
        self.pending.append((key, value))
        if key != OFFSETS:
            return
        if limits is not None and not _within(value, limits):
            self.dropped += len(self.pending)
        else:
            self.ready.extend(self.pending)
            self.batches += 1
        self.position = offset + 1
        self.pending = []
        if len(self.ready) >= 50_000:
            self._write()

    def finish(self) -> None:
        self.dropped += len(self.pending)
        self.pending = []
        if self.ready or self.position != self.store.changelog_position:
            self._write()

    def _write(self) -> None:
        self.store.apply_restored(self.ready, self.position)
        self.ready = []


def _within(raw: bytes | None, committed: dict[str, int]) -> bool:
    """Did the batch that reached these offsets commit (offsets not beyond the group's)?"""
    reached: dict[str, int] = json.loads(raw or b"{}")
    return all(offset <= committed.get(source, -1) for source, offset in reached.items())
