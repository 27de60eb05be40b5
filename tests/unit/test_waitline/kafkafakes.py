"""Fakes of the SDK's Kafka seam (``waitline.kafka``): a consumer over in-memory partitions, a
producer that acknowledges on ``poll``, and a clock. No broker, no threads of their own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, TopicPartition

from waitline.schemas.models import ResumeCommand

TOPIC = "test.resumes"


def resume(
    wait_id: str, run_id: str = "run-1", resume_id: str | None = None, outcome: str = "matched"
) -> bytes:
    """A resume command's record value."""
    return ResumeCommand(
        resume_id=resume_id or f"id-{wait_id}",
        wait_id=wait_id,
        run_id=run_id,
        outcome=outcome,  # type: ignore[arg-type]
        action="continue",
        registered_at=1,
        resolved_at=2,
    ).to_json()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeConsumer:
    """A consumer over in-memory partitions of one topic.

    Subscribed, it is assigned every partition on its first poll. ``append`` adds records (any
    thread); ``revoke`` makes the next poll call ``on_revoke``. Each poll returns the next
    record in partition order, else ``None`` after advancing ``clock`` by its timeout (without
    a clock: after sleeping a few ms, so that a thread polling it does not spin).
    ``eof=True`` (``enable.partition.eof``) returns one end-of-partition event per partition
    each time it reaches the end.
    """

    def __init__(
        self,
        config: dict[str, Any],
        partitions: int = 2,
        clock: FakeClock | None = None,
        topic: str = TOPIC,
    ) -> None:
        self.config = config
        self.topic = topic
        self.log: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
        self.position: dict[int, int] = {}
        self.clock = clock
        self.eof = bool(config.get("enable.partition.eof"))
        self._at_eof: set[int] = set()
        self.commits: list[tuple[bool, list[tuple[int, int]]]] = []
        self.seeks: list[tuple[int, int]] = []
        self.closed = False
        self.callbacks: dict[str, Callable[[Any, list[TopicPartition]], None] | None] = {}
        self._pending_revoke: list[int] | None = None
        self._reassign = True
        self._subscribed = False
        self._skip_once: dict[int, int] = {}  # partition -> offset a fetch skips, once
        self.lock = threading.Lock()
        self.polls = 0

    # -- the test's side -----------------------------------------------------------------------

    def append(self, partition: int, value: bytes) -> int:
        with self.lock:
            self.log[partition].append(value)
            self._at_eof.discard(partition)
            return len(self.log[partition]) - 1

    def revoke(self, partitions: list[int], reassign: bool = True) -> None:
        """On the next poll: ``on_revoke``, then (``reassign``) ``on_assign`` again, from the
        committed offsets."""
        self._pending_revoke = partitions
        self._reassign = reassign

    def skip_once(self, partition: int, offset: int) -> None:
        """The next fetch of ``partition`` leaves out the record at ``offset`` (Tansu's skip)."""
        self._skip_once[partition] = offset

    def committed(self) -> dict[int, int]:
        """The last committed offset of each partition."""
        out: dict[int, int] = {}
        for _sync, offsets in self.commits:
            out.update(dict(offsets))
        return out

    # -- the consumer's side -------------------------------------------------------------------

    def assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.position[tp.partition] = (
                len(self.log[tp.partition]) if tp.offset < 0 else tp.offset
            )

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[[Any, list[TopicPartition]], None] | None = None,
        on_revoke: Callable[[Any, list[TopicPartition]], None] | None = None,
        on_lost: Callable[[Any, list[TopicPartition]], None] | None = None,
    ) -> None:
        assert topics == [self.topic]
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        self._subscribed = True

    def _rebalance(self) -> None:
        if self._subscribed and not self.position:
            parts = [TopicPartition(self.topic, p) for p in self.log]
            start = self.committed()
            for p in self.log:
                self.position[p] = start.get(p, 0)
            if self.callbacks["assign"]:
                self.callbacks["assign"](self, parts)
        if self._pending_revoke is not None:
            revoked, self._pending_revoke = self._pending_revoke, None
            if self.callbacks["revoke"]:
                self.callbacks["revoke"](self, [TopicPartition(self.topic, p) for p in revoked])
            for p in revoked:
                del self.position[p]
            if not self._reassign:
                return
            start = self.committed()
            for p in revoked:  # assigned again at once, from the committed offset
                self.position[p] = start.get(p, 0)
            if self.callbacks["assign"]:
                self.callbacks["assign"](self, [TopicPartition(self.topic, p) for p in revoked])

    def poll(self, timeout: float = -1) -> Message | None:
        self.polls += 1
        self._rebalance()
        with self.lock:
            for p in sorted(self.position):
                offset = self.position[p]
                if self._skip_once.get(p) == offset and offset + 1 < len(self.log[p]):
                    del self._skip_once[p]
                    offset += 1
                if offset < len(self.log[p]):
                    self.position[p] = offset + 1
                    return Message(
                        topic=self.topic, partition=p, offset=offset, value=self.log[p][offset]
                    )
                if self.eof and p not in self._at_eof:
                    self._at_eof.add(p)
                    msg = Message(topic=self.topic, partition=p, offset=offset)
                    msg.set_error(KafkaError(KafkaError._PARTITION_EOF))
                    return msg
        if self.clock is not None and timeout > 0:
            self.clock.now += timeout
        elif timeout > 0:  # a thread polling it idles instead of spinning
            time.sleep(min(timeout, 0.005))
        return None

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        out: list[Message] = []
        while len(out) < num_messages:
            msg = self.poll(timeout if not out else 0)
            if msg is None:
                break
            out.append(msg)
        return out

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append((partition.partition, partition.offset))
        self.position[partition.partition] = partition.offset

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = True) -> Any:
        self.commits.append((not asynchronous, [(tp.partition, tp.offset) for tp in offsets]))
        return None if asynchronous else offsets

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """Records produced records; acknowledges them (or fails them with ``fail``) on poll/flush.
    ``on_produce`` is called with each record as it is produced (a fake worker, say)."""

    def __init__(
        self,
        config: dict[str, Any],
        on_produce: Callable[[str, bytes, bytes], None] | None = None,
    ) -> None:
        self.config = config
        self.on_produce = on_produce
        self.sent: list[tuple[str, bytes, bytes]] = []
        self._unacked: list[
            tuple[Callable[[KafkaError | None, Message], None] | None, Message]
        ] = []
        self.fail: KafkaError | None = None
        self.lock = threading.Lock()

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        partition: int = -1,
        callback: Callable[[KafkaError | None, Message], None] | None = None,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        assert isinstance(value, bytes) and isinstance(key, bytes)
        with self.lock:
            self.sent.append((topic, key, value))
            self._unacked.append((on_delivery or callback, Message(topic=topic, value=value)))
        if self.on_produce is not None:
            self.on_produce(topic, key, value)

    def poll(self, timeout: float = -1) -> int:
        with self.lock:
            unacked, self._unacked = self._unacked, []
        if not unacked and timeout > 0:
            time.sleep(min(timeout, 0.005))
        for callback, msg in unacked:
            if callback is not None:
                callback(self.fail, msg)
        return len(unacked)

    def flush(self, timeout: float = -1) -> int:
        self.poll(0)
        return 0
