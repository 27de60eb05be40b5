"""confluent-kafka clients driven from asyncio: each runs on a thread of its own, and hands what
it has to the event loop with ``loop.call_soon_threadsafe``, a batch at a time.

Why this and not ``confluent_kafka.aio`` or aiokafka: docs/sdk.md, "Choice of Kafka client".
In short, the same librdkafka clients and settings as the rest of waitline (murmur2, the
idempotent producer, SASL/SSL from ``WAITLINE_KAFKA``), the loop held least, and a lone record
acknowledged in milliseconds (``AIOProducer`` buffers records for up to a second first).

- ``ProducerThread``: ``produce`` runs on the loop (librdkafka only queues the record); one
  thread serves the delivery reports and resolves each record's future on the loop.
- ``ResumeTail``: one consumer, outside any group, reads every partition of ``resumes`` from
  its end, and hands the loop the resume commands that name a followed wait.
- ``GroupReader``: one member of a runners' consumer group; hands the loop batches of records,
  at most ``slots`` batches ahead of the handler, and commits what the loop marked handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_END, KafkaError, KafkaException, Message, TopicPartition

from waitline.errors import BrokerError, WaitlineError
from waitline.gaps import OffsetGaps
from waitline.kafka import ConsumerFactory, KafkaConsumer, KafkaProducer, ProducerFactory
from waitline.resumes import OffsetCommits, parse_resume
from waitline.schemas.models import ResumeCommand

__all__ = ["GroupReader", "ProducerThread", "Record", "ResumeTail"]

log = logging.getLogger("waitline.aio")

_BATCH = 500  # records per consume call
_POLL = 0.1  # seconds a thread waits for records before it looks at its stop flag


class ProducerThread:
    """A producer whose acknowledgements resolve futures on ``loop``. Created on the loop."""

    def __init__(self, factory: ProducerFactory, config: dict[str, Any]) -> None:
        self._loop = asyncio.get_running_loop()
        self._producer: KafkaProducer = factory(config)
        self._acks: deque[tuple[asyncio.Future[None], KafkaError | None]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="waitline-producer", daemon=True)
        self._thread.start()

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Send a record; return once the broker acknowledged it (``BrokerError`` if it refused
        it, or librdkafka gave up after ``message.timeout.ms``)."""
        future: asyncio.Future[None] = self._loop.create_future()
        acks = self._acks

        def delivered(error: KafkaError | None, _msg: Message) -> None:
            acks.append((future, error))  # on the thread serving reports; deque is thread-safe

        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:  # librdkafka's queue is full: let deliveries drain it
                await asyncio.sleep(0.005)
        await future

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(_POLL)
            self._hand_over()

    def _hand_over(self) -> None:
        taken = []
        while self._acks:
            taken.append(self._acks.popleft())
        if taken:
            _on_loop(self._loop, _resolve_acks, taken)

    async def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every record sent; return how many are left."""
        remaining = await asyncio.to_thread(self._producer.flush, timeout)
        self._hand_over()
        return remaining

    async def close(self, timeout: float) -> int:
        """Flush, then stop the thread; return how many records were left undelivered."""
        remaining = await self.flush(timeout)
        self._stop.set()
        await asyncio.to_thread(self._thread.join)
        self._hand_over()
        return remaining


def _resolve_acks(acks: list[tuple[asyncio.Future[None], KafkaError | None]]) -> None:
    for future, error in acks:
        if future.done():  # its sender was cancelled
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(BrokerError.from_kafka(error, "record not delivered"))


# A resume as the worker writes it names its wait near the start; a record where the pattern
# does not find every "waitId" (escapes, another layout) is parsed in full instead.
_WAIT_ID = re.compile(rb'"waitId":"([^"\\]*)"')


def _names_one_of(value: bytes, followed: Collection[str]) -> bool:
    """Whether the record may be the resume of a followed wait (False only when sure not)."""
    found = _WAIT_ID.findall(value)
    if len(found) != value.count(b'"waitId"'):
        return True
    return any(wait_id.decode(errors="replace") in followed for wait_id in found)


class ResumeTail:
    """Reads every partition of ``topic`` from its end, on a thread, and hands ``deliver`` (on
    the loop) the resume commands whose ``waitId`` is in ``followed`` when read.

    ``ready`` resolves once every partition was read to its end (partition EOF, not ListOffsets,
    which the embedded broker answers wrongly): a wait registered after that has its resume
    read. ``failed`` is called on the loop with the error that stopped the thread (a
    ``WaitlineError``; Kafka's are wrapped in ``BrokerError``).
    """

    def __init__(
        self,
        factory: ConsumerFactory,
        config: dict[str, Any],
        topic: str,
        partitions: int,
        followed: Collection[str],
        deliver: Callable[[list[ResumeCommand]], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = self._loop.create_future()
        self._factory = factory
        self._config = {**config, "enable.partition.eof": True}
        self._topic = topic
        self._partitions = partitions
        self._followed = followed
        self._deliver = deliver
        self._failed = failed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="waitline-resumes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        consumer: KafkaConsumer | None = None
        try:
            consumer = self._factory(self._config)
            consumer.assign(
                [TopicPartition(self._topic, p, OFFSET_END) for p in range(self._partitions)]
            )
            gaps = OffsetGaps(consumer.seek)
            at_end: set[int] = set()
            while not self._stop.is_set():
                found = []
                for msg in consumer.consume(_BATCH, _POLL):
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            if len(at_end) < self._partitions:
                                at_end.add(msg.partition() or 0)
                                if len(at_end) == self._partitions:
                                    self._loop.call_soon_threadsafe(_settle, self.ready, None)
                        elif error.fatal():
                            raise BrokerError.from_kafka(error, "reading resume commands")
                        else:
                            log.warning("reading resume commands: %s", error.str())
                        continue
                    if not gaps.admit(msg):
                        continue
                    value = msg.value()
                    if not value or not _names_one_of(value, self._followed):
                        continue
                    resume = parse_resume(value)
                    if resume is not None and resume.wait_id in self._followed:
                        found.append(resume)
                if found:
                    self._loop.call_soon_threadsafe(self._deliver, found)
        except Exception as exc:  # handed to the loop: every follower learns of it
            failure = _as_waitline_error(exc)
            _on_loop(self._loop, self._failed, failure)
            _on_loop(self._loop, _settle, self.ready, failure)
        finally:
            if consumer is not None:
                consumer.close()

    async def close(self) -> None:
        """Stop the thread and close the consumer."""
        self._stop.set()
        await asyncio.to_thread(self._thread.join)


def _as_waitline_error(exc: Exception) -> WaitlineError:
    if isinstance(exc, WaitlineError):
        return exc
    if isinstance(exc, KafkaException) and isinstance(exc.args[0], KafkaError):
        error: WaitlineError = BrokerError.from_kafka(exc.args[0], "reading resume commands")
    else:
        error = BrokerError(f"reading resume commands: {exc!r}")
    error.__cause__ = exc
    return error


def _on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """``call_soon_threadsafe``, unless the loop is closed already (nobody is left to tell)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


@dataclass(frozen=True, slots=True)
class Record:
    """A record of ``resumes`` as the group reader hands it to the loop."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


class GroupReader:
    """One member of a consumer group on ``topic``, on a thread.

    Batches of records go to ``queue`` (on the loop), at most ``slots`` of them not yet
    ``done``; a ``None`` in the queue means the thread stopped (``error`` says why, if it
    failed). The loop calls ``handled`` for each record it is done with; the thread commits
    those offsets in batches (``commits``' policy), synchronously for partitions being revoked,
    and at ``close``. A record of a partition revoked since it was read is not marked: its next
    owner reads it again.
    """

    def __init__(
        self,
        factory: ConsumerFactory,
        config: dict[str, Any],
        topic: str,
        commits: OffsetCommits,
        slots: int = 4,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[list[Record] | None] = asyncio.Queue()
        self.error: BaseException | None = None
        self.commits_sent = 0
        self._factory = factory
        self._config = config
        self._topic = topic
        self._commits = commits
        self._lock = threading.Lock()  # guards _commits and _assigned
        self._assigned: set[tuple[str, int]] = set()
        self._slots = threading.Semaphore(slots)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="waitline-runner", daemon=True)
        self._thread.start()

    def handled(self, record: Record) -> None:
        """The loop is done with ``record`` (handled, or skipped as a repeat or invalid). The
        lock is held by the thread only to read or update the offsets, never across a call to
        Kafka, so the loop does not wait on it."""
        with self._lock:
            if (record.topic, record.partition) in self._assigned:
                self._commits.handled(record.topic, record.partition, record.offset)

    def assigned(self, record: Record) -> bool:
        """Whether ``record``'s partition is still this member's."""
        return (record.topic, record.partition) in self._assigned

    def done(self) -> None:
        """The loop finished a batch: the thread may read one more."""
        self._slots.release()

    def _run(self) -> None:
        consumer: KafkaConsumer | None = None
        try:
            consumer = self._factory(self._config)
            self._read(consumer)
        except BaseException as exc:
            self.error = exc
        finally:
            try:
                if consumer is not None:
                    with self._lock:
                        offsets = self._commits.take()
                    self._commit(consumer, offsets, "stop")
                    consumer.close()
            finally:
                _on_loop(self._loop, self.queue.put_nowait, None)

    def _read(self, consumer: KafkaConsumer) -> None:
        gaps = OffsetGaps(consumer.seek)

        def on_assign(_consumer: Any, partitions: list[TopicPartition]) -> None:
            with self._lock:
                self._assigned.update((tp.topic, tp.partition) for tp in partitions)
            gaps.forget(partitions)

        def on_revoke(_consumer: Any, partitions: list[TopicPartition]) -> None:
            with self._lock:  # the loop marks no record of these partitions from here on
                self._assigned.difference_update((tp.topic, tp.partition) for tp in partitions)
                offsets = self._commits.take(partitions)
            self._commit(consumer, offsets, "revoked partitions")
            gaps.forget(partitions)

        def on_lost(_consumer: Any, partitions: list[TopicPartition]) -> None:
            with self._lock:
                self._assigned.difference_update((tp.topic, tp.partition) for tp in partitions)
                self._commits.drop(partitions)
            gaps.forget(partitions)

        consumer.subscribe([self._topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=_POLL):
                continue  # the loop is behind: read nothing more until it catches up
            batch: list[Record] = []
            try:
                for msg in consumer.consume(_BATCH, _POLL):
                    error = msg.error()
                    if error is not None:
                        if error.fatal():
                            raise BrokerError.from_kafka(error, "reading resume commands")
                        continue
                    if gaps.admit(msg):
                        batch.append(
                            Record(
                                msg.topic() or "", msg.partition() or 0, msg.offset() or 0,
                                msg.value(),
                            )
                        )  # fmt: skip
                with self._lock:
                    offsets = self._commits.take() if self._commits.due() else []
                self._commit(consumer, offsets, None)
            finally:
                if batch:
                    self._loop.call_soon_threadsafe(self.queue.put_nowait, batch)
                else:
                    self._slots.release()

    def _commit(
        self, consumer: KafkaConsumer, offsets: list[TopicPartition], why: str | None
    ) -> None:
        if not offsets:
            return
        self.commits_sent += 1
        try:
            if why is None:
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("could not commit resume offsets (%s): %s", why or "batch", exc)

    async def close(self) -> None:
        """Stop the thread; it commits what was handled and closes the consumer."""
        self._stop.set()
        await asyncio.to_thread(self._thread.join)
