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

from waitline.processors.store import ANY_OFFSETS, OFFSETS, PartitionStore

_META = ANY_OFFSETS[0]  # the metadata keyspace's tag (processors.state), as an int

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
        self._runs: dict[int, _Run] = {}

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

    def begin(
        self, stores: list[PartitionStore], committed: dict[int, dict[str, int]] | None
    ) -> None:
        """Start restoring ``stores``; ``step`` does the reading."""
        for store in stores:
            limits = committed.get(store.partition, {}) if committed is not None else None
            self._runs[store.partition] = _Run(store, limits)
        self._reassign()

    def cancel(self, partitions: list[int]) -> None:
        """Stop restoring these partitions (revoked before their restore finished)."""
        cancelled = [p for p in partitions if self._runs.pop(p, None) is not None]
        if cancelled:  # (a list, not any(): every partition must be popped)
            self._reassign()

    @property
    def restoring(self) -> list[int]:
        return sorted(self._runs)

    def step(self, budget: float) -> list[RestoreStats]:
        """Read for up to ``budget`` seconds; return the partitions that reached their end."""
        if not self._runs:
            return []
        consumer = self._get_consumer()
        finished: list[RestoreStats] = []
        deadline = time.monotonic() + budget
        while self._runs and time.monotonic() < deadline:
            messages = consumer.consume(10_000, min(0.2, budget))
            now = time.monotonic()
            runs = self._runs
            for msg in messages:
                run = runs.get(msg.partition() or 0)
                if run is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        finished.append(run.finish())
                        del runs[run.store.partition]
                        continue
                    raise RestoreError(f"reading {self.topic}: {error.str()}")
                run.add(msg.key(), msg.value(), msg.offset() or 0)
            if messages:
                for run in runs.values():
                    if run.records != run.seen:
                        run.seen, run.last_progress = run.records, now
            stuck = [r for r in self._runs.values() if now - r.last_progress > self.idle_timeout]
            if stuck:
                raise RestoreError(
                    f"no end of {self.topic} partition {stuck[0].store.partition} "
                    f"after {self.idle_timeout:g}s"
                )
        if finished:
            self._reassign()
        return finished

    def restore(
        self, stores: list[PartitionStore], committed: dict[int, dict[str, int]] | None
    ) -> list[RestoreStats]:
        """Restore ``stores`` to their partitions' ends, blocking (tools and tests)."""
        self.begin(stores, committed)
        done: list[RestoreStats] = []
        while self._runs:
            done.extend(self.step(1.0))
        return done

    def _reassign(self) -> None:
        consumer = self._get_consumer()
        if self._runs:
            consumer.assign(
                [TopicPartition(self.topic, p, run.next_offset) for p, run in self._runs.items()]
            )
        else:
            consumer.unassign()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class _Run:
    """One partition's restore: the open batch, closed batches waiting to be written."""

    def __init__(self, store: PartitionStore, limits: dict[str, int] | None) -> None:
        self.store = store
        self.limits = limits
        self.pending: list[tuple[bytes, bytes | None]] = []
        self.ready: list[tuple[bytes, bytes | None]] = []
        self.position = store.changelog_position
        self.next_offset = store.changelog_position
        self.records = self.batches = self.dropped = 0
        self.seen = 0  # records at the last progress check
        self.started = self.last_progress = time.monotonic()

    def add(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        self.records += 1
        self.next_offset = offset + 1
        if key is None:
            return
        self.pending.append((key, value))
        if key == OFFSETS:
            self._close(value, offset)
        elif key[0] == _META and key.startswith(ANY_OFFSETS):
            raise RestoreError(
                f"changelog partition {self.store.partition} holds a batch in another state "
                f"layout ({key.decode(errors='replace')!r} at offset {offset}); this version "
                "cannot restore it (docs/operations.md, Upgrading)"
            )

    def _close(self, value: bytes | None, offset: int) -> None:
        """A batch's closing record: keep the batch, unless it did not commit."""
        limits = self.limits
        if limits is not None and not _within(value, limits):
            self.dropped += len(self.pending)
        else:
            self.ready.extend(self.pending)
            self.batches += 1
        self.position = offset + 1
        self.pending = []
        if len(self.ready) >= 50_000:
            self._write()

    def finish(self) -> RestoreStats:
        self.dropped += len(self.pending)
        self.pending = []
        if self.ready or self.position != self.store.changelog_position:
            self._write()
        stats = RestoreStats(
            self.store.partition,
            self.records,
            self.batches,
            self.dropped,
            time.monotonic() - self.started,
        )
        if self.records:
            log.info(
                "restored partition %d: %d changelog records, %d batches, %d dropped in %.2fs",
                stats.partition,
                stats.records,
                stats.batches_applied,
                stats.dropped_records,
                stats.seconds,
            )
        return stats

    def _write(self) -> None:
        self.store.apply_restored(self.ready, self.position)
        self.ready = []


def _within(raw: bytes | None, committed: dict[str, int]) -> bool:
    """Did the batch that reached these offsets commit (offsets not beyond the group's)?"""
    reached: dict[str, int] = json.loads(raw or b"{}")
    return all(offset <= committed.get(source, -1) for source, offset in reached.items())
