"""waitline from a Faust app (faust-streaming): resumes as a typed stream, waits and events
sent with waitline's models through the app's own producer. Install with the ``faust`` extra.

::

    import faust
    from waitline.faust import FaustClient

    app = faust.App("orders", broker="kafka://127.0.0.1:9092")
    waitline = FaustClient(app)

    @app.agent(waitline.resumes_topic())
    async def resume_orders(resumes):
        async for resume in resumes:          # waitline.ResumeCommand, validated
            print(resume.run_id, resume.outcome, resume.event)

    @app.agent(orders_topic)
    async def place_orders(orders):
        async for order in orders:
            await waitline.register_wait(
                f"{order.id}/payment", run_id=order.id, name="payment.received",
                correlation_key=order.id, timeout="1h")

Faust reads ``resumes`` as the app's consumer group and commits as Faust does. A record that is
not a resume command fails to decode and Faust skips it (logging the error). Repeats (same
``resumeId``) are not filtered: keep a ``waitline.resumes.SeenResumes`` in the agent if the
handler is not idempotent. Records are sent to the partition waitline's producers pick
(murmur2 of ``name|correlationKey``), whatever partitioner the app's producer uses.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.serializers import codecs

from waitline.client import new_event
from waitline.config import Settings
from waitline.errors import InvalidRecordError
from waitline.schemas.keys import make_key, partition_for
from waitline.schemas.models import CancelWait, Event, OnTimeout, ResumeCommand, WaitRegistration
from waitline.topics import Topics, load_topics

__all__ = ["CODEC", "FaustClient", "ResumeCodec"]

CODEC = "waitline_resume"
"""The name ``ResumeCodec`` is registered under in Faust's codec registry."""


class ResumeCodec(codecs.Codec):
    """Faust codec between a ``resumes`` record value and ``waitline.ResumeCommand``."""

    def _loads(self, s: bytes) -> Any:
        return ResumeCommand.model_validate_json(s)

    def _dumps(self, s: Any) -> bytes:
        if not isinstance(s, ResumeCommand):
            raise TypeError(f"expected a ResumeCommand, not {type(s).__name__}")
        return s.to_json()


codecs.register(CODEC, ResumeCodec())


class FaustClient:
    """waitline's topics in a Faust app. Like ``AsyncClient``, but sending through the app's
    producer (so inside an agent, records go out with the app's other output).

    ``settings`` and ``topics`` as for ``Client``: topic names come from
    ``WAITLINE_TOPICS_FILE`` and ``WAITLINE_TOPIC_PREFIX``; the app's own broker setting
    decides where they go.
    """

    def __init__(
        self, app: faust.App, settings: Settings | None = None, *, topics: Topics | None = None
    ) -> None:
        self.app = app
        self.settings = settings or Settings()
        self._topics = topics
        self._raw: dict[str, faust.types.TopicT] = {}

    @property
    def topics(self) -> Topics:
        """The topics of ``settings.topics_file`` (read on first use), or those given."""
        if self._topics is None:
            self._topics = load_topics(self.settings.topics_file, self.settings.topic_prefix)
        return self._topics

    def resumes_topic(self) -> faust.types.TopicT:
        """``resumes`` as a Faust topic whose values are ``ResumeCommand``\\s: pass it to
        ``@app.agent``. Keys are the ``runId`` as text."""
        return self.app.topic(
            self.topics.resumes.name,
            key_type=str,
            value_serializer=CODEC,
            partitions=self.topics.resumes.partitions,
        )

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
        """Publish an event (``Client.send_event``'s arguments) through the app's producer;
        returns it as sent."""
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
        """Publish an event built by hand; returns it."""
        key = make_key(event.name, event.correlation_key)
        await self._send(self.topics.events.name, self.topics.events.partitions, key, event)
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
        """Register a wait (``Client.register_wait``'s arguments) through the app's producer;
        its resume comes on :meth:`resumes_topic`."""
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
        """Register a wait built by hand; returns it."""
        spec = self.topics.wait_commands
        key = make_key(registration.name, registration.correlation_key)
        await self._send(spec.name, spec.partitions, key, registration)
        return registration

    async def cancel_wait(self, wait_id: str, *, name: str, correlation_key: str) -> CancelWait:
        """Cancel a pending wait (``Client.cancel_wait``); returns the command."""
        cancel = CancelWait(
            type="cancel", wait_id=wait_id, name=name, correlation_key=correlation_key
        )
        spec = self.topics.wait_commands
        await self._send(spec.name, spec.partitions, make_key(name, correlation_key), cancel)
        return cancel

    async def _send(
        self, topic: str, partitions: int, key: bytes, record: Event | WaitRegistration | CancelWait
    ) -> None:
        value = record.to_json()
        size, limit = len(key) + len(value), self.settings.max_record_bytes
        if size > limit:
            raise InvalidRecordError(
                f"a record of {size} bytes exceeds WAITLINE_MAX_RECORD_BYTES ({limit}): "
                "the processor would dead-letter it"
            )
        if topic not in self._raw:
            self._raw[topic] = self.app.topic(
                topic, key_serializer="raw", value_serializer="raw", partitions=partitions
            )
        await self._raw[topic].send(key=key, value=value, partition=partition_for(key, partitions))
