"""The SDK's seam in front of Kafka, and the settings of every client it creates.

The SDK calls a small part of confluent-kafka's ``Consumer`` and ``Producer``; ``KafkaConsumer``
and ``KafkaProducer`` name that part, so tests hand the runners and the asyncio client fakes
(a factory taking the librdkafka configuration) and keep the real broker for integration
tests. The ``*_config`` functions render each client's settings in one place: the user's
``Settings.as_librdkafka_dict()`` (bootstrap servers, SASL, SSL, ...) over waitline's defaults.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Literal, Protocol, overload

from confluent_kafka import KafkaError, Message, TopicPartition

from waitline.config import Settings

__all__ = [
    "ConsumerFactory",
    "KafkaConsumer",
    "KafkaProducer",
    "ProducerFactory",
    "group_config",
    "producer_config",
    "tail_config",
]

# Room for the key, headers and record batch around a value, in librdkafka's
# ``message.max.bytes``: the SDK sends no record over ``max_record_bytes`` (it checks), so its
# producer needs no more than that plus the framing.
FRAME_BYTES = 65_536

RebalanceCallback = Callable[[Any, list[TopicPartition]], None]
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class KafkaConsumer(Protocol):
    """The part of ``confluent_kafka.Consumer`` the SDK uses."""

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Read exactly these partitions, from their offsets, outside any group."""
        ...

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Join the group for ``topics``; the callbacks run inside ``poll``/``consume``."""
        ...

    def poll(self, timeout: float = -1) -> Message | None:
        """The next record or event, or ``None`` after ``timeout`` seconds."""
        ...

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        """Up to ``num_messages`` records or events, waiting up to ``timeout`` seconds."""
        ...

    def seek(self, partition: TopicPartition) -> None:
        """Continue ``partition`` at its offset."""
        ...

    @overload
    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[True] = ...
    ) -> None: ...

    @overload
    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[False]
    ) -> list[TopicPartition]: ...

    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: bool = True
    ) -> list[TopicPartition] | None:
        """Commit ``offsets`` (the next offset to read); wait for the broker unless
        ``asynchronous``."""
        ...

    def close(self) -> None:
        """Leave the group (committing nothing more) and release the client."""
        ...


class KafkaProducer(Protocol):
    """The part of ``confluent_kafka.Producer`` the SDK uses."""

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        partition: int = -1,
        callback: DeliveryCallback | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Queue a record; ``on_delivery`` is called from ``poll`` or ``flush`` once the broker
        acknowledged or refused it. Raises ``BufferError`` while the queue is full."""
        ...

    def poll(self, timeout: float = -1) -> int:
        """Serve delivery reports, waiting up to ``timeout`` seconds; return how many."""
        ...

    def flush(self, timeout: float = -1) -> int:
        """Wait up to ``timeout`` seconds for every queued record; return how many are left."""
        ...


ConsumerFactory = Callable[[dict[str, Any]], KafkaConsumer]
"""Builds a consumer from its librdkafka configuration (default: ``confluent_kafka.Consumer``)."""

ProducerFactory = Callable[[dict[str, Any]], KafkaProducer]
"""Builds a producer from its librdkafka configuration (default: ``confluent_kafka.Producer``)."""


def producer_config(settings: Settings) -> dict[str, Any]:
    """The SDK's producer: idempotent, murmur2 like the Java client, ``linger.ms=2`` so that a
    lone record goes out at once (``Settings.kafka`` overrides any of it)."""
    return {
        "enable.idempotence": True,
        "linger.ms": 2,
        "partitioner": "murmur2_random",
        "message.max.bytes": settings.max_record_bytes + FRAME_BYTES,
        **settings.as_librdkafka_dict(),
    }


def tail_config(settings: Settings) -> dict[str, Any]:
    """A reader of ``resumes`` from its end, outside any consumer group."""
    return {
        "group.id": f"waitline-tail-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "latest",
        "fetch.wait.max.ms": 50,  # Tansu holds a fetch this long (docs/embedded-broker.md)
        **settings.as_librdkafka_dict(),
    }


def group_config(settings: Settings, group_id: str) -> dict[str, Any]:
    """A member of a runners' consumer group on ``resumes``: waitline commits the offsets."""
    return {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "fetch.wait.max.ms": 50,  # Tansu holds a fetch this long (docs/embedded-broker.md)
        **settings.as_librdkafka_dict(),
    }
