"""Which Kafka client should ``waitline.aio`` drive from asyncio? A short side-by-side.

    .venv/bin/python benchmarks/aio_clients.py [--bootstrap HOST:PORT] [--records 200000]

Needs the bench extras (aiokafka comes with faust-streaming): ``make bench`` installs them.
Without ``--bootstrap`` it starts an embedded broker on a free port.

Three ways, each measured the same way on one event loop:

- ``aio``: confluent-kafka's own asyncio classes (``confluent_kafka.aio.AIOConsumer`` and
  ``AIOProducer``), which run every librdkafka call in a thread pool;
- ``thread``: a plain confluent-kafka client driven by one background thread, which hands
  whole batches (or delivery reports) to the loop with ``loop.call_soon_threadsafe``;
- ``aiokafka``: the pure-Python asyncio client.

For each: **consume** (read ``--records`` resume-sized records from 8 partitions into the loop),
**produce** (send ``--records // 5`` records at once and await every acknowledgement), and
**one send** (median time to send one record and have it acknowledged, the cost a single
``register`` pays). Throughout, a ticker measures how late the event loop runs a 5 ms sleep:
the worst lateness is what every other coroutine of the process would have waited.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AIOTopicPartition
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.aio import AIOConsumer, AIOProducer
from confluent_kafka.cimpl import NewTopic

from waitline.broker import EmbeddedBroker

PARTITIONS = 8
Consume = Callable[[str, str, int], Coroutine[Any, Any, None]]
Produce = Callable[[str, str, int], Coroutine[Any, Any, None]]
OneSend = Callable[[str, str, int], Coroutine[Any, Any, list[float]]]
VALUE = (
    b'{"resumeId":"3f1c2a9e-7d1b-5c55-9a3e-3b1f2c4d5e6f","waitId":"run-000000/verify-email",'
    b'"runId":"run-000000","outcome":"matched","action":"continue","event":{"eventId":'
    b'"0b6f3a52-0c8e-4bd4-a2a6-6c0d2c1f9e11","name":"email.verified","correlationKey":'
    b'"user:000000","data":{"userId":"000000","via":"link"},"timestamp":1765000000000},'
    b'"error":null,"metadata":null,"registeredAt":1765000000000,"resolvedAt":1765000000123}'
)


class LoopLag:
    """The worst lateness of a 5 ms sleep while it runs: how long the loop was held."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - start - 0.005)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


def fill(bootstrap: str, records: int) -> str:
    topic = f"aio-probe-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50})
    for i in range(records):
        while True:
            try:
                producer.produce(topic, VALUE, f"run-{i}".encode())
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    return topic


def _consumer_config(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": f"probe-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 50,
    }


# -- consume ---------------------------------------------------------------------------------


async def consume_aio(bootstrap: str, topic: str, records: int) -> None:
    consumer = AIOConsumer(_consumer_config(bootstrap))
    await consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen = 0
    while seen < records:
        batch = await consumer.consume(1000, 0.1)
        seen += sum(1 for m in batch if m.error() is None)
    await consumer.close()


async def consume_thread(bootstrap: str, topic: str, records: int) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    seen = 0

    def deliver(values: list[bytes | None]) -> None:
        nonlocal seen
        seen += len(values)
        if seen >= records and not done.done():
            done.set_result(None)

    stop = threading.Event()

    def run() -> None:
        consumer = Consumer(_consumer_config(bootstrap))
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        while not stop.is_set():
            batch = consumer.consume(1000, 0.1)
            values = [m.value() for m in batch if m.error() is None]
            if values:
                loop.call_soon_threadsafe(deliver, values)
        consumer.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    await done
    stop.set()
    await asyncio.to_thread(thread.join)


async def consume_aiokafka(bootstrap: str, topic: str, records: int) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    parts = [AIOTopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    seen = 0
    while seen < records:
        batches = await consumer.getmany(timeout_ms=100, max_records=1000)
        seen += sum(len(b) for b in batches.values())
    await consumer.stop()


# -- produce ---------------------------------------------------------------------------------

_PRODUCER = {"linger.ms": 2, "partitioner": "murmur2_random", "enable.idempotence": True}


async def produce_aio(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOProducer({"bootstrap.servers": bootstrap, **_PRODUCER})
    futures = [await producer.produce(topic, VALUE, f"run-{i}".encode()) for i in range(count)]
    await producer.flush()
    await asyncio.gather(*futures)
    await producer.close()


class ThreadProducer:
    """librdkafka's produce() on the loop (it only queues); delivery reports served by a
    background thread and resolved on the loop."""

    def __init__(self, bootstrap: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.producer = Producer({"bootstrap.servers": bootstrap, **_PRODUCER})
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            self.producer.poll(0.05)

    def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.loop.create_future()

        def resolve(error: KafkaError | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(RuntimeError(error.str()))

        def delivered(error: KafkaError | None, _msg: Message) -> None:
            self.loop.call_soon_threadsafe(resolve, error)

        self.producer.produce(topic, value, key, on_delivery=delivered)
        return future

    async def close(self) -> None:
        self.stop.set()
        await asyncio.to_thread(self.thread.join)
        await asyncio.to_thread(self.producer.flush, 10)


async def produce_thread(bootstrap: str, topic: str, count: int) -> None:
    producer = ThreadProducer(bootstrap)
    await asyncio.gather(*(producer.send(topic, VALUE, f"run-{i}".encode()) for i in range(count)))
    await producer.close()


async def produce_aiokafka(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await producer.start()
    futures = [await producer.send(topic, VALUE, f"run-{i}".encode()) for i in range(count)]
    await asyncio.gather(*futures)
    await producer.stop()


# -- one send --------------------------------------------------------------------------------


async def one_send_aio(bootstrap: str, topic: str, samples: int) -> list[float]:
    producer = AIOProducer({"bootstrap.servers": bootstrap, **_PRODUCER})
    took = []
    for _ in range(samples):
        start = time.perf_counter()
        await (await producer.produce(topic, VALUE, b"k"))
        took.append(time.perf_counter() - start)
    await producer.close()
    return took


async def one_send_thread(bootstrap: str, topic: str, samples: int) -> list[float]:
    producer = ThreadProducer(bootstrap)
    took = []
    for _ in range(samples):
        start = time.perf_counter()
        await producer.send(topic, VALUE, b"k")
        took.append(time.perf_counter() - start)
    await producer.close()
    return took


async def one_send_aiokafka(bootstrap: str, topic: str, samples: int) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await producer.start()
    took = []
    for _ in range(samples):
        start = time.perf_counter()
        await producer.send_and_wait(topic, VALUE, b"k")
        took.append(time.perf_counter() - start)
    await producer.stop()
    return took


async def measure(what: str, run: Awaitable[Any], unit_count: int | None = None) -> Any:
    with LoopLag() as lag:
        await asyncio.sleep(0.02)  # the ticker runs before the work starts
        cpu, start = time.process_time(), time.perf_counter()
        result = await run
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
    rate = f"{unit_count / took:>9,.0f}/s" if unit_count else " " * 11
    held = lag.worst * 1e3
    print(f"  {what:<18} {took:7.2f} s {rate}  cpu {cpu:5.2f} s  loop held ≤ {held:6.1f} ms")
    return result


async def main_async(bootstrap: str, records: int, samples: int) -> None:
    topic = fill(bootstrap, records)
    sends = records // 5
    ways: dict[str, tuple[Consume, Produce, OneSend]] = {
        "aio": (consume_aio, produce_aio, one_send_aio),
        "thread": (consume_thread, produce_thread, one_send_thread),
        "aiokafka": (consume_aiokafka, produce_aiokafka, one_send_aiokafka),
    }
    for name, (consume, produce, one_send) in ways.items():
        print(f"{name}:")
        out = f"aio-probe-out-{uuid.uuid4().hex[:8]}"
        await measure(f"consume {records:,}", consume(bootstrap, topic, records), records)
        await measure(f"produce {sends:,}", produce(bootstrap, out, sends), sends)
        took = await measure(f"one send × {samples}", one_send(bootstrap, out, samples))
        median, worst = statistics.median(took) * 1e3, max(took) * 1e3
        print(f"  one send: median {median:.1f} ms, max {worst:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="an existing broker (default: start an embedded one)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    if args.bootstrap:
        asyncio.run(main_async(args.bootstrap, args.records, args.samples))
        return
    with EmbeddedBroker() as broker:
        asyncio.run(main_async(broker.bootstrap_servers, args.records, args.samples))


if __name__ == "__main__":
    main()
