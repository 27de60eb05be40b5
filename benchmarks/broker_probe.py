"""How long does a record wait in a held fetch? (docs/benchmarks.md, "Latency")

    .venv/bin/python benchmarks/broker_probe.py [--bootstrap HOST:PORT]

Produces one record every 137 ms and reports produce → poll latency for several
``fetch.wait.max.ms`` values. A broker that answers a held fetch as soon as records arrive
(Apache Kafka) shows a few ms for every value; Tansu 0.6.0 shows latency growing with the wait.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap")
    args = parser.parse_args()
    broker = None if args.bootstrap else EmbeddedBroker()
    try:
        bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
        probe(bootstrap, [500, 100, 50, 20, 5])
    finally:
        if broker is not None:
            broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
