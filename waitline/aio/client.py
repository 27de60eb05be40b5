"""The asyncio client: send events, register and cancel waits, await resumes.

Every method is a coroutine that returns once the broker has acknowledged what it sent, and
none blocks the event loop: the Kafka clients run on threads of their own
(:mod:`waitline.aio.kafka`). All the waits of one client share one consumer of ``resumes``,
started by the first wait and kept until :meth:`AsyncClient.close`: ten thousand concurrent
``wait_for_event`` calls hold one consumer and one thread (docs/sdk.md, "Scale").
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer, Producer

from waitline.aio.kafka import ProducerThread, ResumeTail
from waitline.client import new_event
from waitline.config import Settings
from waitline.errors import BrokerError, InvalidRecordError, WaitlineError, WaitTimeoutError
from waitline.kafka import ConsumerFactory, ProducerFactory, producer_config, tail_config
from waitline.schemas.keys import make_key
from waitline.schemas.models import CancelWait, Event, OnTimeout, ResumeCommand, WaitRegistration
from waitline.topics import Topics, load_topics

__all__ = ["AsyncClient", "PendingResume"]

# How long the first wait of a client waits for its resume consumer to read every partition of
# ``resumes`` to its end, and a record for the broker's acknowledgement (librdkafka's
# ``message.timeout.ms``, unless the settings give one), before BrokerError.
START_TIMEOUT = 30.0
SEND_TIMEOUT_MS = 30_000


class AsyncClient:
    """The SDK for asyncio: one per process is enough (one per event loop: it stays with the loop
    it was first used on).

    ``producer`` and ``consumer`` build the Kafka clients from their configuration (default:
    confluent-kafka's ``Producer`` and ``Consumer``); tests pass fakes. Nothing is read or
    connected until first use; :meth:`close` (or ``async with``) releases both clients.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        topics: Topics | None = None,
        producer: ProducerFactory | None = None,
        consumer: ConsumerFactory | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._topics = topics
        self._producer_factory = producer
        self._consumer_factory = consumer
        self._producer: ProducerThread | None = None
        self._tail: ResumeTail | None = None
        self._tail_lock: asyncio.Lock | None = None
        self._followed: dict[str, list[asyncio.Future[ResumeCommand]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def topics(self) -> Topics:
        """The topics of ``settings.topics_file`` (read on first use), or those given."""
        if self._topics is None:
            self._topics = load_topics(self.settings.topics_file, self.settings.topic_prefix)
        return self._topics

    @property
    def waiting(self) -> int:
        """How many waits this client is following (awaiting their resume) right now."""
        return sum(len(futures) for futures in self._followed.values())

    # -- sending -------------------------------------------------------------------------------

    async def send_event(
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
        """Publish an event; returns it as sent (with its ``eventId`` and ``timestamp``) once
        the broker has it.

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
        return await self.send(event)

    async def send(self, event: Event) -> Event:
        """Publish an event built by hand to ``events``, keyed by ``name|correlationKey``;
        returns it once the broker has it."""
        key = make_key(event.name, event.correlation_key)
        await self._send(self.topics.events.name, key, event.to_json())
        return event

    async def register_wait(
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
        """Ask the processor to resume ``run_id`` when a matching event arrives; returns the
        registration once the broker has it. Its resume goes to ``resumes``, for a runner (or
        :meth:`wait_for_event`) to pick up.

        ``lookback``: only events whose Kafka record time is at or after the registration's
        record time minus this count (``"0"``: only events appended at or after the
        registration). Registering a ``wait_id`` again is safe: a pending wait is left alone,
        a resolved one has its resume command published again.
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
        return await self.register(registration)

    async def register(self, registration: WaitRegistration) -> WaitRegistration:
        """Publish a registration built by hand to ``wait-commands``; returns it once the
        broker has it."""
        key = make_key(registration.name, registration.correlation_key)
        await self._send(self.topics.wait_commands.name, key, registration.to_json())
        return registration

    async def cancel_wait(self, wait_id: str, *, name: str, correlation_key: str) -> CancelWait:
        """Cancel a pending wait: it resolves ``cancelled`` (action ``cancel``). ``name`` and
        ``correlation_key`` must be the wait's own; a resolved or unknown wait is left alone.
        Returns the command once the broker has it."""
        cancel = CancelWait(
            type="cancel", wait_id=wait_id, name=name, correlation_key=correlation_key
        )
        key = make_key(name, correlation_key)
        await self._send(self.topics.wait_commands.name, key, cancel.to_json())
        return cancel

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        size, limit = len(key) + len(value), self.settings.max_record_bytes
        if size > limit:
            raise InvalidRecordError(
                f"a record of {size} bytes exceeds WAITLINE_MAX_RECORD_BYTES ({limit}): "
                "the processor would dead-letter it"
            )
        self._check_loop()
        await self._ensure_producer().send(topic, key, value)

    def _ensure_producer(self) -> ProducerThread:
        if self._producer is None:
            config = {"message.timeout.ms": SEND_TIMEOUT_MS, **producer_config(self.settings)}
            self._producer = ProducerThread(self._producer_factory or Producer, config)
        return self._producer

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every record sent is acknowledged (they are, once their coroutines have
        returned); raise ``BrokerError`` if some are not within ``timeout`` seconds."""
        if self._producer is not None and await self._producer.flush(timeout) > 0:
            raise BrokerError(f"records still unacknowledged after {timeout:g}s")

    # -- waiting -------------------------------------------------------------------------------

    def expect(self, wait_id: str) -> PendingResume:
        """Follow the resume of ``wait_id``: ``async with client.expect(wait_id) as pending``
        starts following before you register the wait (so no resume is missed), and
        ``await pending.result()`` returns it. Leaving the block stops following."""
        return PendingResume(self, wait_id)

    async def wait_for_event(
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
        """Register a wait and return its resume command once it arrives.

        ``timeout`` is the wait's own (server-side) timeout; ``wait_timeout`` bounds how long
        this call waits, in seconds (default: no bound). Raises ``WaitTimeoutError`` when it
        passes; the wait stays registered and can be followed again by registering it anew.
        Many calls can wait at once (``asyncio.gather``, a ``TaskGroup``): they share one
        consumer.
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
        async with self.expect(wait_id) as pending:
            await self.register(registration)
            return await pending.result(wait_timeout)

    async def _follow(self, wait_id: str) -> asyncio.Future[ResumeCommand]:
        await self._start_tail()
        future: asyncio.Future[ResumeCommand] = asyncio.get_running_loop().create_future()
        self._followed.setdefault(wait_id, []).append(future)
        return future

    def _unfollow(self, wait_id: str, future: asyncio.Future[ResumeCommand]) -> None:
        futures = self._followed.get(wait_id)
        if futures is not None and future in futures:
            futures.remove(future)
            if not futures:
                del self._followed[wait_id]
        future.cancel()

    async def _start_tail(self) -> None:
        self._check_loop()
        tail = self._tail
        if tail is not None and tail.ready.done() and tail.ready.exception() is None:
            return  # the common case: started already
        if self._tail_lock is None:
            self._tail_lock = asyncio.Lock()
        async with self._tail_lock:
            if self._tail is None:
                # The producer's start (connection, producer id) overlaps the consumer's: the
                # first wait registers as soon as the consumer is ready.
                self._ensure_producer()
                self._tail = ResumeTail(
                    self._consumer_factory or Consumer,
                    tail_config(self.settings),
                    self.topics.resumes.name,
                    self.topics.resumes.partitions,
                    self._followed,
                    self._deliver,
                    self._fail,
                )
            tail = self._tail
        try:
            await asyncio.wait_for(asyncio.shield(tail.ready), START_TIMEOUT)
        except TimeoutError:
            raise BrokerError(
                f"the resume consumer did not reach the end of {self.topics.resumes.name} "
                f"within {START_TIMEOUT:g}s: is Kafka at {self.settings.bootstrap_servers} "
                "reachable?"
            ) from None

    def _check_loop(self) -> None:
        """A client's Kafka threads hand their results to the loop it was first used on."""
        if self._closed:
            raise WaitlineError("the client is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise WaitlineError(
                "an AsyncClient works on the event loop it was first used on: create one per loop"
            )

    def _deliver(self, resumes: list[ResumeCommand]) -> None:
        for resume in resumes:
            for future in self._followed.pop(resume.wait_id, []):
                if not future.done():
                    future.set_result(resume)

    def _fail(self, error: BaseException) -> None:
        """The resume consumer stopped: the waits it served fail; the next starts another."""
        self._tail = None
        self._fail_all(error)

    def _fail_all(self, error: BaseException) -> None:
        followed = list(self._followed.values())
        self._followed.clear()
        for futures in followed:
            for future in futures:
                if not future.done():
                    future.set_exception(error)

    async def close(self, timeout: float = 30.0) -> None:
        """Flush what was sent, stop the resume consumer (waits still pending raise
        ``WaitlineError``) and release both Kafka clients."""
        if self._closed:
            return
        self._closed = True
        self._fail_all(WaitlineError("the client was closed while waiting"))
        try:
            if self._producer is not None:
                remaining = await self._producer.close(timeout)
                if remaining > 0:
                    raise BrokerError(f"records still unacknowledged after {timeout:g}s")
        finally:
            if self._tail is not None:
                await self._tail.close()

    async def __aenter__(self) -> AsyncClient:
        """``async with AsyncClient() as client:`` closes it at the end of the block."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class PendingResume:
    """The resume of one wait, followed from ``async with client.expect(wait_id)`` on."""

    def __init__(self, client: AsyncClient, wait_id: str) -> None:
        self.wait_id = wait_id
        self._client = client
        self._future: asyncio.Future[ResumeCommand] | None = None

    async def __aenter__(self) -> PendingResume:
        """Start following (the first wait of a client starts its resume consumer)."""
        self._future = await self._client._follow(self.wait_id)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._future is not None:
            self._client._unfollow(self.wait_id, self._future)

    def done(self) -> bool:
        """Whether the resume has arrived (or following it failed)."""
        return self._future is not None and self._future.done()

    async def result(self, timeout: float | None = None) -> ResumeCommand:
        """The resume command, once it arrives; ``WaitTimeoutError`` after ``timeout`` seconds
        (the wait itself stays registered)."""
        if self._future is None:
            raise WaitlineError("use `async with client.expect(wait_id) as pending` first")
        if timeout is None:
            return await self._future
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except TimeoutError:
            raise WaitTimeoutError(
                f"no resume for wait {self.wait_id!r} within {timeout:g}s "
                "(the wait is still registered)"
            ) from None
