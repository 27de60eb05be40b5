"""Exactly-once: one transactional producer per partition, fenced when the partition is assigned.

Partition N's outputs, changelog records and input offsets are committed by the producer whose
``transactional.id`` is ``<prefix>-<N>`` (``<prefix>``: ``WAITLINE_TRANSACTIONAL_ID``, else the
group id), as in Kafka Streams' first exactly-once design, one producer per task. The worker
that is assigned partition N calls ``init_transactions`` with that id before it reads the
partition. That fences the partition's previous owner (a worker that was SIGKILLed, or one
that lost the partition and does not know it yet) and aborts its open transaction, so readers
of committed data are blocked behind a crashed worker's transaction only until its partitions
have a new owner. That holds on every broker, also on one that never times an open
transaction out (the embedded broker); Apache Kafka also aborts it after
``transaction.timeout.ms`` (``TRANSACTION_TIMEOUT_MS`` unless the client config sets it).

The ids depend only on the prefix and the partition, so every worker of a group must use the
same prefix; two groups must not share one.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import KafkaException, Producer

__all__ = ["TRANSACTION_TIMEOUT_MS", "PartitionProducers", "transactional_id"]

# Kafka Streams' default for exactly-once: a dead transaction blocks readers for at most this
# long on Apache Kafka even when no one takes its partitions over.
TRANSACTION_TIMEOUT_MS = 10_000
INIT_TIMEOUT_S = 30.0

log = logging.getLogger("waitline.worker")


def transactional_id(prefix: str, partition: int) -> str:
    return f"{prefix}-{partition}"


class PartitionProducers:
    """The transactional producers of the partitions this worker holds."""

    def __init__(self, config: dict[str, Any], prefix: str) -> None:
        self._config = {"transaction.timeout.ms": TRANSACTION_TIMEOUT_MS, **config}
        self._prefix = prefix
        self._producers: dict[int, Producer] = {}

    def open(self, partitions: list[int]) -> None:
        """A producer for each partition, each fencing the partition's previous owner
        (``init_transactions``, in parallel: ~0.1 s each on the embedded broker)."""
        fresh = [p for p in partitions if p not in self._producers]
        if not fresh:
            return

        def start(partition: int) -> Producer:
            tid = transactional_id(self._prefix, partition)
            producer = Producer({**self._config, "transactional.id": tid})
            producer.init_transactions(INIT_TIMEOUT_S)
            return producer

        with ThreadPoolExecutor(max_workers=min(8, len(fresh))) as pool:
            futures = {p: pool.submit(start, p) for p in fresh}
        failed: list[str] = []
        for partition, future in futures.items():
            error = future.exception()
            if error is None:
                self._producers[partition] = future.result()
            else:
                failed.append(f"partition {partition}: {error}")
        if failed:
            raise KafkaException(f"init_transactions failed for {'; '.join(failed)}")
        log.info("transactional producers ready for partitions %s", sorted(fresh))

    def get(self, partition: int) -> Producer:
        return self._producers[partition]

    def held(self) -> list[int]:
        return sorted(self._producers)

    def close(self, partitions: list[int], timeout: float = 10.0) -> None:
        """Let the producers of ``partitions`` go (no transaction is open between batches)."""
        for partition in partitions:
            producer = self._producers.pop(partition, None)
            if producer is not None:
                producer.flush(timeout)

    def close_all(self, timeout: float = 10.0) -> None:
        self.close(list(self._producers), timeout)
