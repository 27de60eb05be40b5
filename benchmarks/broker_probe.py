"""Two probes of the broker under live load (docs/embedded-broker.md).

    .venv/bin/python benchmarks/broker_probe.py [--bootstrap HOST:PORT]
    .venv/bin/python benchmarks/broker_probe.py --fetch-cost [--rate 2000] [--seconds 20]

The first: how long does a record wait in a held fetch? It produces one record every 137 ms
and reports produce → poll latency for several ``fetch.wait.max.ms`` values. A broker that
answers a held fetch as soon as records arrive (Apache Kafka) shows a few ms for every value;
Tansu 0.6.0 shows latency growing with the wait.

The second (``--fetch-cost``, embedded broker only: it reads the broker's CPU time from
``/proc``): does a live consumer cost the broker more as its partitions grow? One producer
offers ``--rate`` records/s of 100 bytes (``linger.ms`` ``--linger``, by default 5,
librdkafka's) to a fresh 8-partition topic, first alone, then, on another fresh topic, with one
consumer reading it live (``fetch.wait.max.ms=20``). Every 5 s it prints the broker's CPU share
and how far the consumer is behind. On Tansu 0.6.0 at linger 5 (a record or two per batch at
2,000/s over 8 partitions) the first phase stays flat near 25% and the second climbs to a
saturated core within seconds; at ``--linger 50`` the same offer costs the broker about 8% alone
and 20% with the consumer. What a fetch costs grows with the number of record batches the
partition holds, not with its records (docs/embedded-broker.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from bench.trace import cpu_seconds
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from waitline.broker import EmbeddedBroker


def probe(bootstrap: str, waits: list[int], samples: int = 15) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for wait in waits:
        topic = f"probe-{uuid.uuid4().hex[:8]}"
        for future in admin.create_topics([NewTopic(topic, 8, 1)]).values():
            future.result()
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": uuid.uuid4().hex,
                "fetch.wait.max.ms": wait,
            }
        )
        consumer.assign([TopicPartition(topic, p, 0) for p in range(8)])
        consumer.poll(1.0)
        latencies = []
        for _ in range(samples):
            time.sleep(0.137)  # spacing the records, so each one meets a held fetch
            producer.produce(topic, str(time.time()).encode(), b"k")
            producer.flush()
            while True:
                msg = consumer.poll(5.0)
                if msg is not None and msg.error() is None:
                    latencies.append((time.time() - float(msg.value() or b"0")) * 1000)
                    break
        consumer.close()
        print(
            f"fetch.wait.max.ms={wait:4}: latency median {statistics.median(latencies):6.1f} ms, "
            f"max {max(latencies):6.1f} ms"
        )


def fetch_cost(bootstrap: str, pid: int, rate: float, seconds: float, linger_ms: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for reading in (False, True):
        topic = f"probe-{uuid.uuid4().hex[:8]}"
        for future in admin.create_topics([NewTopic(topic, 8, 1)]).values():
            future.result()
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": linger_ms})
        consumer = None
        if reading:
            consumer = Consumer(
                {"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                 "fetch.wait.max.ms": 20}
            )  # fmt: skip
            consumer.assign([TopicPartition(topic, p, 0) for p in range(8)])
        print(f"{rate:,.0f} records/s to a fresh topic, {'with' if reading else 'no'} consumer:")
        start = time.monotonic()
        window, cpu_then = start, _broker_cpu_seconds(pid)
        produced = consumed = 0
        while (now := time.monotonic()) - start < seconds:
            if consumer is not None:
                consumed += sum(1 for m in consumer.consume(1000, 0) if m.error() is None)
            if now < start + produced / rate:
                time.sleep(0.0005)  # pacing the offer
                continue
            producer.produce(topic, b"x" * 100, str(produced).encode())
            producer.poll(0)
            produced += 1
            if now - window >= 5:
                cpu_now = _broker_cpu_seconds(pid)
                share = 100 * (cpu_now - cpu_then) / (now - window)
                behind = f", consumer {produced - consumed:,} records behind" if reading else ""
                print(f"  {now - start:4.0f} s: broker CPU {share:4.0f}%{behind}", flush=True)
                window, cpu_then = now, cpu_now
        producer.flush(10)
        if consumer is not None:
            consumer.close()


def _broker_cpu_seconds(pid: int) -> float:
    """The broker's CPU seconds so far (``bench.trace.cpu_seconds``); it runs while probed."""
    seconds = cpu_seconds(pid)
    if seconds is None:
        raise SystemExit(f"no CPU time for the broker's process {pid}: has it stopped?")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap")
    parser.add_argument("--fetch-cost", action="store_true", help="the second probe (see above)")
    parser.add_argument("--rate", type=float, default=2000.0, help="--fetch-cost: records/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="--fetch-cost: per phase")
    parser.add_argument(
        "--linger", type=int, default=5, metavar="MS", help="--fetch-cost: producer's linger.ms"
    )
    args = parser.parse_args()
    if args.fetch_cost and args.bootstrap:
        parser.error("--fetch-cost reads the embedded broker's CPU time: leave out --bootstrap")
    broker = None if args.bootstrap else EmbeddedBroker()
    try:
        bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
        if args.fetch_cost:
            assert broker is not None and broker.pid is not None
            fetch_cost(bootstrap, broker.pid, args.rate, args.seconds, args.linger)
        else:
            probe(bootstrap, [500, 100, 50, 20, 5])
    finally:
        if broker is not None:
            broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
