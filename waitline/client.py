"""The Python SDK: send events, register and cancel waits, consume resume commands.

>>> from waitline import Client
>>> with Client() as client:                                    # doctest: +SKIP
...     client.send_event("email.verified", "user-42", {"via": "link"})
...     resume = client.wait_for_event(
...         "run-7/verify", run_id="run-7", name="email.verified",
...         correlation_key="user-42", timeout="24h", wait_timeout=30)
...     print(resume.outcome, resume.event)

Kafka is reached through two small seams, ``Transport`` (produce) and ``ResumeSource``
(consume), so the SDK can be unit-tested with fakes; the defaults are confluent-kafka clients
created on first use (no I/O in constructors).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from confluent_kafka import OFFSET_END, Consumer, KafkaError, Producer, TopicPartition
from pydantic import ValidationError

from processors.gaps import OffsetGaps
from processors.limits import producer_max_bytes
from schemas.keys import make_key, partition_for
from schemas.models import (
    CancelWait,
    Event,
    OnTimeout,
    ResumeCommand,
    WaitRegistration,
)
from waitline.config import Settings
from waitline.errors import BrokerError, InvalidRecordError, WaitTimeoutError
from waitline.topics import Topics, load_topics

__all__ = ["Client", "ResumeSource", "Runner", "Transport", "new_event"]


class Transport(Protocol):
    """Where the SDK's records go. ``flush`` returns the number still undelivered."""

    def produce(self, topic: str, key: bytes, value: bytes) -> None: ...

    def flush(self, timeout: float) -> int: ...


class ResumeSource(Protocol):
    """Where resume commands come from: raw record values, ``None`` on an idle poll."""

    def poll(self, timeout: float) -> bytes | None: ...

    def close(self) -> None: ...


class _KafkaTransport:
    def __init__(self, config: dict[str, Any], max_record_bytes: int = 1_048_576) -> None:
        self._errors: list[str] = []
        self._producer = Producer(
            {
                "enable.idempotence": True,
                "linger.ms": 2,
                "partitioner": "murmur2_random",
                "message.max.bytes": producer_max_bytes(max_record_bytes),
                **config,
            }
        )

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._delivered)
                return
            except BufferError:
                self._producer.poll(0.05)

    def flush(self, timeout: float) -> int:
        remaining: int = self._producer.flush(timeout)
        if self._errors:
            errors, self._errors = self._errors, []
            raise BrokerError(f"{len(errors)} records were not delivered: {errors[0]}")
        return remaining

    def _delivered(self, error: KafkaError | None, _msg: Any) -> None:
        if error is not None:
            self._errors.append(error.str())


class _PartitionTail:
    """Reads one partition of the resumes topic from its end, without a consumer group."""

    def __init__(self, config: dict[str, Any], topic: str, partition: int) -> None:
        self._consumer = Consumer(
            {
                "group.id": f"waitline-tail-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "latest",
                "fetch.wait.max.ms": 50,  # Tansu holds a fetch this long (docs/benchmarks.md)
                **config,
            }
        )
        self._consumer.assign([TopicPartition(topic, partition, OFFSET_END)])
        self._gaps = OffsetGaps(self._consumer.seek)  # see processors.gaps

    def poll(self, timeout: float) -> bytes | None:
        msg = self._consumer.poll(timeout)
        if msg is None or msg.error() is not None or not self._gaps.admit(msg):
            return None
        value: bytes | None = msg.value()
        return value

    def close(self) -> None:
        self._consumer.close()


def new_event(
    name: str,
    correlation_key: str,
    data: dict[str, Any] | None = None,
    *,
    event_id: str | None = None,
    idempotency_key: str | None = None,
    ttl: str | None = None,
    timestamp: int | None = None,
) -> Event:
    """An event, validated: a new UUID ``eventId`` and the wall clock unless given.

    ``timestamp`` is data: resumes carry it and an ``if`` reads it; ``lookback``, ``ttl`` and
    timeouts count from the Kafka record time instead (``ttl``: how long after it the event
    stays available to waits that register later).
    """
    return Event(
        event_id=event_id or str(uuid.uuid4()),
        name=name,
        correlation_key=correlation_key,
        data=data or {},
        idempotency_key=idempotency_key,
        ttl=ttl,
        timestamp=timestamp if timestamp is not None else int(time.time() * 1000),
    )


class Client:
    """Producer-side SDK. Thread-compatible, not thread-safe: one per thread."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        topics: Topics | None = None,
        transport: Transport | None = None,
        resume_source: Callable[[int], ResumeSource] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._topics = topics
        self._transport = transport
        self._resume_source = resume_source

    @property
    def topics(self) -> Topics:
        if self._topics is None:
            self._topics = load_topics(self.settings.topics_file, self.settings.topic_prefix)
        return self._topics

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = _KafkaTransport(
                self.settings.as_librdkafka_dict(), self.settings.max_record_bytes
            )
        return self._transport

    # -- events --------------------------------------------------------------------------------

    def send_event(
        self,
        name: str,
        correlation_key: str,
        data: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        idempotency_key: str | None = None,
        ttl: str | None = None,
        timestamp: int | None = None,
    ) -> Event:
        """Publish an event; returns it as sent (with its ``eventId`` and ``timestamp``).

        ``timestamp`` (default: the wall clock) is data: resumes carry it and an ``if`` reads
        it; ``lookback``, ``ttl`` and timeouts count from the Kafka record time instead.
        """
        event = new_event(
            name,
            correlation_key,
            data,
            event_id=event_id,
            idempotency_key=idempotency_key,
            ttl=ttl,
            timestamp=timestamp,
        )
        return self.send(event)

    def send(self, event: Event) -> Event:
        self._produce(
            self.topics.events.name, make_key(event.name, event.correlation_key), event.to_json()
        )
        return event

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        """Send a record, unless the processor would refuse it for its size."""
        size, limit = len(key) + len(value), self.settings.max_record_bytes
        if size > limit:
            raise InvalidRecordError(
                f"a record of {size} bytes exceeds WAITLINE_MAX_RECORD_BYTES ({limit}): "
                "the processor would dead-letter it"
            )
        self.transport.produce(topic, key, value)

    # -- waits ---------------------------------------------------------------------------------

    def register_wait(
        self,
        wait_id: str,
        *,
        run_id: str,
        name: str,
        correlation_key: str,
        timeout: str,
        on_timeout: OnTimeout = "fail",
        if_: str | None = None,
        context: dict[str, Any] | None = None,
        lookback: str | None = None,
        metadata: Any = None,
    ) -> WaitRegistration:
        """Ask the processor to resume ``run_id`` when a matching event arrives.

        ``lookback``: only events whose Kafka record time is at or after the registration's
        record time minus this count (``"0"``: only events appended at or after the
        registration); an event's own ``timestamp`` never decides. None: any event still kept.

        Registering a ``wait_id`` again is safe: a pending wait is left alone, a resolved one
        has its resume command published again.
        """
        registration = WaitRegistration(
            wait_id=wait_id,
            run_id=run_id,
            name=name,
            correlation_key=correlation_key,
            timeout=timeout,
            on_timeout=on_timeout,
            if_=if_,
            context=context,
            lookback=lookback,
            metadata=metadata,
        )
        return self.register(registration)

    def register(self, registration: WaitRegistration) -> WaitRegistration:
        self._produce(
            self.topics.wait_commands.name,
            make_key(registration.name, registration.correlation_key),
            registration.to_json(),
        )
        return registration

    def cancel_wait(self, wait_id: str, *, name: str, correlation_key: str) -> CancelWait:
        cancel = CancelWait(
            type="cancel", wait_id=wait_id, name=name, correlation_key=correlation_key
        )
        self._produce(
            self.topics.wait_commands.name, make_key(name, correlation_key), cancel.to_json()
        )
        return cancel

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything sent so far is acknowledged by the broker."""
        if self._transport is not None and self._transport.flush(timeout) > 0:
            raise BrokerError(f"records still unacknowledged after {timeout:g}s")

    # -- the blocking experience ---------------------------------------------------------------

    def wait_for_event(
        self,
        wait_id: str,
        *,
        run_id: str,
        name: str,
        correlation_key: str,
        timeout: str,
        wait_timeout: float | None = None,
        on_timeout: OnTimeout = "fail",
        if_: str | None = None,
        context: dict[str, Any] | None = None,
        lookback: str | None = None,
        metadata: Any = None,
    ) -> ResumeCommand:
        """Register a wait and block until its resume command arrives.

        ``timeout`` is the wait's own (server-side) timeout; ``wait_timeout`` bounds how long
        this call blocks, in seconds (default: no bound). Raises WaitTimeoutError when it
        passes; the wait stays registered and can be followed again by registering it anew.

        ``lookback``: only events whose Kafka record time is at or after the registration's
        record time minus this count (``"0"``: only events appended at or after the
        registration); an event's own ``timestamp`` never decides. None: any event still kept.
        """
        partition = partition_for(run_id.encode(), self.topics.resumes.partitions)
        source = self._open_resume_source(partition)
        try:
            self.register_wait(
                wait_id,
                run_id=run_id,
                name=name,
                correlation_key=correlation_key,
                timeout=timeout,
                on_timeout=on_timeout,
                if_=if_,
                context=context,
                lookback=lookback,
                metadata=metadata,
            )
            self.flush()
            deadline = None if wait_timeout is None else time.monotonic() + wait_timeout
            while deadline is None or time.monotonic() < deadline:
                left = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
                raw = source.poll(left)
                if raw is None:
                    continue
                resume = _parse_resume(raw)
                if resume is not None and resume.wait_id == wait_id:
                    return resume
            raise WaitTimeoutError(
                f"no resume for wait {wait_id!r} within {wait_timeout:g}s "
                "(the wait is still registered)"
            )
        finally:
            source.close()

    def _open_resume_source(self, partition: int) -> ResumeSource:
        if self._resume_source is not None:
            return self._resume_source(partition)
        tail = _PartitionTail(
            self.settings.as_librdkafka_dict(), self.topics.resumes.name, partition
        )
        # Resolve the start position before registering, so an immediate resume is not missed.
        tail.poll(0.5)
        return tail

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Runner:
    """A workflow runner's loop: consume resume commands and hand each to ``handler`` once.

    Members of one consumer group split the resume partitions. Offsets are committed after the
    handler returns (at-least-once); a resume seen again with the same ``resumeId`` by this
    process is skipped. Handlers should still be idempotent: after a crash a resume can arrive
    twice, always with the same ``resumeId``.
    """

    def __init__(
        self,
        handler: Callable[[ResumeCommand], None],
        *,
        group_id: str,
        settings: Settings | None = None,
        topics: Topics | None = None,
        remember: int = 100_000,
    ) -> None:
        self.handler = handler
        self.group_id = group_id
        self.settings = settings or Settings()
        self._topics = topics
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self.handled = 0

    def iter_resumes(self, idle_timeout: float | None = None) -> Iterator[ResumeCommand]:
        """Yield resume commands; stop after ``idle_timeout`` seconds without one."""
        topics = self._topics or load_topics(self.settings.topics_file, self.settings.topic_prefix)
        consumer = Consumer(
            {
                "group.id": self.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                "fetch.wait.max.ms": 50,  # Tansu holds a fetch this long (docs/benchmarks.md)
                **self.settings.as_librdkafka_dict(),
            }
        )
        gaps = OffsetGaps(consumer.seek)  # see processors.gaps
        consumer.subscribe(
            [topics.resumes.name],
            on_assign=lambda _c, parts: gaps.forget(parts),
            on_revoke=lambda _c, parts: gaps.forget(parts),
        )
        idle_since = time.monotonic()
        try:
            while idle_timeout is None or time.monotonic() - idle_since < idle_timeout:
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None or not gaps.admit(msg):
                    continue
                idle_since = time.monotonic()
                resume = _parse_resume(msg.value() or b"")
                if resume is not None and resume.resume_id not in self._seen:
                    self._seen[resume.resume_id] = None
                    if len(self._seen) > self._remember:
                        self._seen.popitem(last=False)
                    yield resume
                    self.handled += 1
                consumer.commit(message=msg, asynchronous=False)
        finally:
            consumer.close()

    def run(self, idle_timeout: float | None = None) -> int:
        """Call the handler for every resume; return how many were handled."""
        for resume in self.iter_resumes(idle_timeout):
            self.handler(resume)
        return self.handled


def _parse_resume(raw: bytes) -> ResumeCommand | None:
    try:
        return ResumeCommand.model_validate_json(raw)
    except ValidationError:
        return None
