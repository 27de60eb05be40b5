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

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from waitline.config import Settings
from waitline.errors import BrokerError, InvalidRecordError, WaitTimeoutError
from waitline.gaps import OffsetGaps
from waitline.kafka import (
    ConsumerFactory,
    KafkaConsumer,
    group_config,
    producer_config,
    tail_config,
)
from waitline.resumes import (
    COMMIT_EVERY,
    COMMIT_INTERVAL,
    REMEMBER,
    OffsetCommits,
    SeenResumes,
    parse_resume,
)
from waitline.schemas.keys import make_key, partition_for
from waitline.schemas.models import (
    CancelWait,
    Event,
    OnTimeout,
    ResumeCommand,
    WaitRegistration,
)
from waitline.topics import Topics, load_topics

__all__ = ["Client", "ResumeSource", "Runner", "Transport", "new_event"]

log = logging.getLogger("waitline.runner")


class Transport(Protocol):
    """Where the SDK's records go. ``flush`` returns the number still undelivered."""

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue a record for ``topic``; may return before the broker has it."""
        ...

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for queued records; return how many are left."""
        ...


class ResumeSource(Protocol):
    """Where resume commands come from: raw record values, ``None`` on an idle poll."""

    def poll(self, timeout: float) -> bytes | None:
        """The next record's value, or ``None`` when none came within ``timeout`` seconds."""
        ...

    def close(self) -> None:
        """Release the consumer."""
        ...


class _KafkaTransport:
    def __init__(self, config: dict[str, Any]) -> None:
        self._errors: list[str] = []
        self._producer = Producer(config)

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
        self._consumer = Consumer(config)
        self._consumer.assign([TopicPartition(topic, partition, OFFSET_END)])
        self._gaps = OffsetGaps(self._consumer.seek)  # see waitline.gaps

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
        """The topics of ``settings.topics_file`` (read on first use), or those given."""
        if self._topics is None:
            self._topics = load_topics(self.settings.topics_file, self.settings.topic_prefix)
        return self._topics

    @property
    def transport(self) -> Transport:
        """Where records go: a confluent-kafka producer created on first use, or the one given."""
        if self._transport is None:
            self._transport = _KafkaTransport(producer_config(self.settings))
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
        """Publish an event built by hand (or by :func:`new_event`) to ``events``, keyed by
        ``name|correlationKey``; returns it. Call :meth:`flush` to wait for the broker."""
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
        """Publish a registration built by hand to ``wait-commands``; returns it. Call
        :meth:`flush` to wait for the broker."""
        self._produce(
            self.topics.wait_commands.name,
            make_key(registration.name, registration.correlation_key),
            registration.to_json(),
        )
        return registration

    def cancel_wait(self, wait_id: str, *, name: str, correlation_key: str) -> CancelWait:
        """Cancel a pending wait: it resolves ``cancelled`` (action ``cancel``). ``name`` and
        ``correlation_key`` must be the wait's own (they route the cancel to its partition); a
        wait that already resolved, or an unknown one, is left alone. Returns the command."""
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
                resume = parse_resume(raw)
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
        tail = _PartitionTail(tail_config(self.settings), self.topics.resumes.name, partition)
        # Resolve the start position before registering, so an immediate resume is not missed.
        tail.poll(0.5)
        return tail

    def close(self, timeout: float = 30.0) -> None:
        """Flush what was sent (raises ``BrokerError`` if the broker does not acknowledge it
        within ``timeout`` seconds). The client holds no consumer between calls."""
        self.flush(timeout)

    def __enter__(self) -> Client:
        """``with Client() as client:`` closes (flushes) it at the end of the block."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Runner:
    """A workflow runner's loop: consume resume commands and hand each to ``handler`` once.

    Members of one consumer group split the resume partitions. A record's offset is committed
    after the handler returned (at-least-once), in batches: every ``commit_every`` records or
    ``commit_interval`` seconds, whichever comes first, and at once for partitions taken away
    by a rebalance and when the runner stops. A resume whose ``resumeId`` is among the last
    ``remember`` seen (an LRU, about 18 MB at the default 100,000) is skipped. Handlers should
    still be idempotent: a resume handled just before a crash or a failed commit is handed
    again, always with the same ``resumeId``.

    ``run`` stops on Ctrl-C or SIGTERM (in the main thread), and ``stop`` from anywhere: the
    current handler finishes, the offsets handled are committed, and ``run`` returns. A second
    Ctrl-C interrupts a handler that does not return.

    ``consumer`` builds the Kafka consumer from its configuration (default:
    ``confluent_kafka.Consumer``); tests pass a fake.
    """

    def __init__(
        self,
        handler: Callable[[ResumeCommand], None],
        *,
        group_id: str,
        settings: Settings | None = None,
        topics: Topics | None = None,
        remember: int = REMEMBER,
        commit_every: int = COMMIT_EVERY,
        commit_interval: float = COMMIT_INTERVAL,
        consumer: ConsumerFactory | None = None,
    ) -> None:
        self.handler = handler
        self.group_id = group_id
        self.settings = settings or Settings()
        self._topics = topics
        self._seen = SeenResumes(remember)
        self._commit_every = commit_every
        self._commit_interval = commit_interval
        self._consumer_factory = consumer
        self._stop = threading.Event()
        self.handled = 0
        self.commits = 0  # commit requests sent (batches), for tests and metrics

    def stop(self) -> None:
        """Stop after the current handler returns; safe from any thread or signal handler."""
        self._stop.set()

    def iter_resumes(self, idle_timeout: float | None = None) -> Iterator[ResumeCommand]:
        """Yield resume commands; stop after ``idle_timeout`` seconds without one, or on
        :meth:`stop`. A record counts as handled when the next one is asked for."""
        topics = self._topics or load_topics(self.settings.topics_file, self.settings.topic_prefix)
        config = group_config(self.settings, self.group_id)
        consumer: KafkaConsumer = (
            self._consumer_factory(config) if self._consumer_factory else Consumer(config)
        )
        gaps = OffsetGaps(consumer.seek)  # see waitline.gaps
        commits = OffsetCommits(self._commit_every, self._commit_interval)

        def on_assign(_consumer: Any, partitions: list[TopicPartition]) -> None:
            gaps.forget(partitions)

        def on_revoke(_consumer: Any, partitions: list[TopicPartition]) -> None:
            self._commit(consumer, commits.take(partitions), "revoked partitions")
            gaps.forget(partitions)

        def on_lost(_consumer: Any, partitions: list[TopicPartition]) -> None:
            commits.drop(partitions)
            gaps.forget(partitions)

        consumer.subscribe(
            [topics.resumes.name], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost
        )
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set() and (
                idle_timeout is None or time.monotonic() - idle_since < idle_timeout
            ):
                msg = consumer.poll(0.2)
                if commits.due():
                    self._commit(consumer, commits.take(), None)
                if msg is None or msg.error() is not None or not gaps.admit(msg):
                    continue
                idle_since = time.monotonic()
                resume = parse_resume(msg.value())
                if resume is not None:
                    if resume.resume_id not in self._seen:
                        yield resume
                        self.handled += 1
                    self._seen.add(resume.resume_id)
                commits.handled(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        finally:
            try:
                self._commit(consumer, commits.take(), "stop")
            finally:
                consumer.close()

    def _commit(
        self, consumer: KafkaConsumer, offsets: list[TopicPartition], why: str | None
    ) -> None:
        """Commit ``offsets``: in the background while running, and waiting for the broker on a
        revoke or at stop (``why``). A failure is logged: those records come again."""
        if not offsets:
            return
        self.commits += 1
        try:
            if why is None:
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("could not commit resume offsets (%s): %s", why or "batch", exc)

    def run(self, idle_timeout: float | None = None) -> int:
        """Call the handler for every resume until :meth:`stop`, Ctrl-C or SIGTERM (or
        ``idle_timeout`` seconds without a resume); return how many were handled."""
        restore = self._stop_on_signals()
        try:
            for resume in self.iter_resumes(idle_timeout):
                self.handler(resume)
        finally:
            restore()
        return self.handled

    def _stop_on_signals(self) -> Callable[[], None]:
        """Let SIGINT and SIGTERM call :meth:`stop` once (the next one acts as before); return
        what puts the previous handlers back. Only the main thread can set signal handlers."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("%s: stopping after the current resume", signal.Signals(signum).name)
            signal.signal(signum, previous[signal.Signals(signum)] or signal.SIG_DFL)
            self.stop()

        for sig in previous:
            signal.signal(sig, on_signal)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler or signal.SIG_DFL)

        return restore
