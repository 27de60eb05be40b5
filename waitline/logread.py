"""Reading topics as an operator tool does: whole partitions to their end, outside any group.

Every end of a partition here is where the broker's end-of-partition event says it is, never
ListOffsets alone: the embedded broker answers ListOffsets (``get_watermark_offsets``) with too
small an end, and ``offsets_for_times`` with 0 for any time (docs/embedded-broker.md). The
broker's answers are used as a first guess and checked by reading:

- ``end_offsets`` reads each partition from one record before the reported end to its
  end-of-partition event (a correct answer costs one record; a short one, the records between);
- ``offsets_at`` takes ``offsets_for_times``'s answer if the records on either side of it say
  it is right, and otherwise scans the partition's record times.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from waitline.errors import BrokerError
from waitline.processors.gaps import OffsetGaps
from waitline.progress import Bar

__all__ = [
    "TimeOffsets",
    "committed_offsets",
    "end_offsets",
    "offsets_at",
    "read_to_end",
    "reader",
    "record_at",
    "timestamps_at",
]

# How long a partition may stay silent (no record, no end-of-partition event) before a read
# gives up on it.
IDLE_TIMEOUT_S = 60.0
# A partition read from the broker's guess of its end that shows nothing for this long is read
# from its beginning instead (a guess past the end: the embedded broker then answers nothing).
GUESS_TIMEOUT_S = 5.0


def reader(config: Mapping[str, Any], **extra: Any) -> Consumer:
    """A consumer outside any group (assign only; nothing committed) that reports ends."""
    return Consumer(
        {
            **config,
            "group.id": f"waitline-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
            **extra,
        }
    )


def _kafka_error(msg: Message, topic: str) -> BrokerError:
    error = msg.error()
    assert error is not None
    return BrokerError.from_kafka(error, f"reading {topic} partition {msg.partition()}")


def read_to_end(
    config: Mapping[str, Any],
    topic: str,
    partitions: Iterable[int],
    starts: Mapping[int, int] | None = None,
    *,
    stops: Mapping[int, int] | None = None,
    bar: Bar | None = None,
    idle_timeout: float = IDLE_TIMEOUT_S,
) -> Iterator[Message]:
    """Every record of ``topic``'s ``partitions`` from ``starts`` (default: the beginning) to
    the end each has when the read reaches it, or to the offset ``stops`` gives (exclusive).

    A partition whose offsets jump is read again from the gap once (``processors.gaps``: the
    embedded broker's fetches can skip a batch of a partition being written)."""
    wanted = sorted(set(partitions))
    starts = starts or {}
    stops = stops or {}
    open_ = {p for p in wanted if stops.get(p) is None or stops[p] > starts.get(p, 0)}
    if not open_:
        return
    consumer = reader(config)
    gaps = OffsetGaps(consumer.seek)
    try:
        consumer.assign(
            [TopicPartition(topic, p, starts.get(p, OFFSET_BEGINNING)) for p in sorted(open_)]
        )
        last = time.monotonic()
        while open_:
            messages = consumer.consume(5_000, 0.5)
            if messages:
                last = time.monotonic()
            elif time.monotonic() - last > idle_timeout:
                raise BrokerError(
                    f"no end of {topic} partition {min(open_)} after {idle_timeout:g}s"
                )
            done: list[int] = []
            for msg in messages:
                partition = msg.partition() or 0
                if partition not in open_:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        done.append(partition)
                        continue
                    raise _kafka_error(msg, topic)
                stop = stops.get(partition)
                if stop is not None and (msg.offset() or 0) >= stop:
                    done.append(partition)
                    continue
                if not gaps.admit(msg):
                    continue
                if bar is not None:
                    bar.advance()
                yield msg
                if stop is not None and (msg.offset() or 0) + 1 >= stop:
                    done.append(partition)
            finished = [p for p in dict.fromkeys(done) if p in open_]
            if finished:
                open_.difference_update(finished)
                consumer.pause([TopicPartition(topic, p) for p in finished])
    finally:
        consumer.close()


def end_offsets(
    config: Mapping[str, Any],
    topic: str,
    partitions: Iterable[int],
    *,
    bar: Bar | None = None,
    idle_timeout: float = IDLE_TIMEOUT_S,
) -> dict[int, int]:
    """Each partition's end (the offset its next record will have), read to its end-of-
    partition event from just before the broker's reported end."""
    wanted = sorted(set(partitions))
    consumer = reader(config)
    ends: dict[int, int] = {}
    try:
        guesses: dict[int, int] = {}
        for p in wanted:
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            except KafkaException:
                low, high = 0, 0
            guesses[p] = max(high - 1, low, 0)
        consumer.assign([TopicPartition(topic, p, guesses[p]) for p in wanted])
        started = last = time.monotonic()
        heard: set[int] = set()
        while len(ends) < len(wanted):
            messages = consumer.consume(5_000, 0.5)
            now = time.monotonic()
            for msg in messages:
                partition = msg.partition() or 0
                heard.add(partition)
                error = msg.error()
                if error is None:
                    if bar is not None:
                        bar.advance()
                    continue
                if error.code() != KafkaError._PARTITION_EOF:
                    raise _kafka_error(msg, topic)
                if partition not in ends:
                    ends[partition] = msg.offset() or 0
                    consumer.pause([TopicPartition(topic, partition)])
            if messages:
                last = now
            silent = [p for p in wanted if p not in heard and p not in ends]
            if silent and now - started > GUESS_TIMEOUT_S:
                # Nothing at all from the guess: past the end, say. Read from the beginning.
                for p in silent:
                    heard.add(p)
                    consumer.seek(TopicPartition(topic, p, OFFSET_BEGINNING))
            if now - last > idle_timeout:
                missing = min(p for p in wanted if p not in ends)
                raise BrokerError(f"no end of {topic} partition {missing} after {idle_timeout:g}s")
    finally:
        consumer.close()
    return ends


def record_at(config: Mapping[str, Any], topic: str, partition: int, offset: int) -> Message | None:
    """The record at ``offset``, or None when there is none (removed, or past the end)."""
    for msg in read_to_end(config, topic, [partition], {partition: offset}):
        return msg if msg.offset() == offset else None
    return None


def committed_offsets(
    config: Mapping[str, Any], group_id: str, topic: str, partitions: Iterable[int]
) -> dict[int, int | None]:
    """The group's committed offset of each partition (None: nothing committed), asked
    without joining the group."""
    consumer = Consumer({**config, "group.id": group_id, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
    except KafkaException as exc:
        raise BrokerError(f"cannot read the offsets of group {group_id}: {exc}") from None
    finally:
        consumer.close()
    return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in found}


@dataclass(frozen=True)
class TimeOffsets:
    """Where each partition reaches a time: the first record at or after it (its end when
    none is), and how that was found per partition (``"broker"``: offsets_for_times, checked;
    ``"scan"``: record times read)."""

    offsets: dict[int, int]
    method: dict[int, str]


def offsets_at(
    config: Mapping[str, Any],
    topic: str,
    ends: Mapping[int, int],
    timestamp: int,
    *,
    bar: Bar | None = None,
) -> TimeOffsets:
    """The offset of the first record of each partition (of ``ends``) whose time is at or
    after ``timestamp``: the broker's answer where the records on either side of it confirm it
    (the one before earlier, the one at it not), else found by reading the partition's record
    times from its beginning."""
    consumer = reader(config)
    try:
        asked = consumer.offsets_for_times(
            [TopicPartition(topic, p, timestamp) for p in ends], timeout=30
        )
        answers = {tp.partition: tp.offset for tp in asked if tp.error is None}
    except KafkaException:
        answers = {}
    finally:
        consumer.close()
    candidates: dict[int, int] = {}
    for partition, end in ends.items():
        answer = answers.get(partition)
        if answer is not None and answer < 0:
            answer = end  # Kafka's "no such record": every record is earlier
        if answer is not None and 0 <= answer <= end:
            candidates[partition] = answer
    # The records on either side of each answer, read at once.
    times: dict[tuple[int, int], int] = {}
    starts = {p: max(o - 1, 0) for p, o in candidates.items()}
    stops = {p: min(o + 1, ends[p]) for p, o in candidates.items()}
    for msg in read_to_end(config, topic, candidates, starts, stops=stops):
        times[msg.partition() or 0, msg.offset() or 0] = msg.timestamp()[1]
    offsets: dict[int, int] = {}
    method: dict[int, str] = {}
    for partition, answer in candidates.items():
        before = times.get((partition, answer - 1))
        at = times.get((partition, answer))
        if answer > 0 and before is None and answer == ends[partition]:
            continue  # nothing says the partition's records are earlier
        if (before is None or before < timestamp) and (
            answer == ends[partition] or (at is not None and at >= timestamp)
        ):
            offsets[partition], method[partition] = answer, "broker"
    scan = {p: end for p, end in ends.items() if p not in offsets}
    for partition in scan:
        offsets[partition], method[partition] = scan[partition], "scan"
    found: set[int] = set()
    for msg in read_to_end(config, topic, scan, stops=scan, bar=bar):
        partition = msg.partition() or 0
        if partition not in found and msg.timestamp()[1] >= timestamp:
            offsets[partition] = msg.offset() or 0
            found.add(partition)
            if len(found) == len(scan):
                break
    return TimeOffsets(offsets, method)


def timestamps_at(
    config: Mapping[str, Any], topic: str, offsets: Mapping[int, int]
) -> dict[int, int]:
    """The record time at each partition's offset, which must lie below the partition's end
    (a partition whose record there is gone is left out)."""
    found: dict[int, int] = {}
    stops = {p: o + 1 for p, o in offsets.items()}
    for msg in read_to_end(config, topic, offsets, offsets, stops=stops):
        partition = msg.partition() or 0
        if msg.offset() == offsets[partition]:
            found[partition] = msg.timestamp()[1]
    return found
