"""The workloads' input: the same generated records for every contender.

- match-heavy: 100k waits over 20k keys, then 200k events, half of which match (each matching
  key twice);
- early-events: the same events first, then the waits;
- timeouts: 100k waits with 1-5 s timeouts and no events;
- large-state: 1,000,000 pending waits applied first (the preload), then match-heavy's stream;
- hot-pair: one pair takes everything: 100k events (buffered), 10k waits with lookback 0, then
  10k events, the first of which resolves every wait pending.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from waitline.schemas.keys import make_key
from waitline.topics import Topics, create_topics, load_topics

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
PARTITIONS = 8
WORKLOADS = ("match-heavy", "early-events", "timeouts", "large-state", "hot-pair")
Record = tuple[str, bytes, bytes]  # topic, key, value


def input_producer(bootstrap: str, linger_ms: int = 50) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": linger_ms,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_000_000,
        }
    )


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def wait_records(
    t: Topics, n: int, keys: int, tag: str, timeout: Callable[[int], str]
) -> Iterator[Record]:
    for i in range(n):
        key = f"{tag}k{i % keys}"
        body = {
            "waitId": f"{tag}w{i}",
            "runId": f"{tag}r{i}",
            "name": "bench",
            "correlationKey": key,
            "timeout": timeout(i),
        }
        yield t.wait_commands.name, make_key("bench", key), encode(body)


def event_records(t: Topics, n: int, keys: int, tag: str) -> Iterator[Record]:
    """Half of the events hit a key with waits (each such key twice), half miss."""
    for i in range(n):
        key = f"{tag}k{(i // 2) % keys}" if i % 2 == 0 else f"{tag}miss{i}"
        body = {"eventId": f"{tag}e{i}", "name": "bench", "correlationKey": key, "data": {"i": i}}
        yield t.events.name, make_key("bench", key), encode(body)


def hot_pair_records(t: Topics, scale: float) -> Iterator[Record]:
    """One pair: 100k events (buffered), then 10k waits that count only events from their
    registration on (lookback 0), then 10k events; the first of those resolves the waits
    pending then, and any registered after it matches it at once."""
    events, waits = int(100_000 * scale), int(10_000 * scale)
    key = make_key("bench", "hot")
    for i in range(events):
        body = {"eventId": f"he{i}", "name": "bench", "correlationKey": "hot", "data": {"i": i}}
        yield t.events.name, key, encode(body)
    for i in range(waits):
        wait = {"waitId": f"hw{i}", "runId": f"hr{i}", "name": "bench", "correlationKey": "hot"}
        yield t.wait_commands.name, key, encode(wait | {"timeout": "1h", "lookback": "0"})
    for i in range(waits):
        body = {"eventId": f"hf{i}", "name": "bench", "correlationKey": "hot", "data": {"i": i}}
        yield t.events.name, key, encode(body)


def produce(p: Producer, records: Iterator[Record] | list[Record]) -> int:
    n = 0
    for record in records:
        produce_one(p, *record)
        n += 1
    p.flush()
    return n


def build_input(workload: str, t: Topics, scale: float) -> tuple[Iterator[Record], list[Record]]:
    """(preload, stream): the preload is applied before the measured stream starts."""
    hour = lambda _i: "1h"  # noqa: E731
    waits, events, keys = int(100_000 * scale), int(200_000 * scale), int(20_000 * scale)
    preload: Iterator[Record] = iter(())
    if workload == "large-state":
        big = int(1_000_000 * scale)
        preload = wait_records(t, big, big, "big", hour)
    if workload in ("match-heavy", "large-state"):
        stream = [*wait_records(t, waits, keys, "", hour), *event_records(t, events, keys, "")]
    elif workload == "early-events":
        stream = [*event_records(t, events, keys, ""), *wait_records(t, waits, keys, "", hour)]
    elif workload == "timeouts":
        stream = list(wait_records(t, waits, waits, "", lambda i: f"{1 + i % 5}s"))
    elif workload == "hot-pair":
        stream = list(hot_pair_records(t, scale))
    else:
        raise SystemExit(f"unknown workload {workload!r}")
    return preload, stream


def produce_one(p: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            p.produce(topic, value, key)
            return
        except BufferError:
            p.poll(0.05)


def fresh_topics(bootstrap: str) -> tuple[Topics, str]:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    topics = load_topics(REPO / "topics.yaml", prefix)
    create_topics(AdminClient({"bootstrap.servers": bootstrap}), topics)
    return topics, prefix
