"""The asyncio SDK against fakes of its Kafka seam: no broker, real threads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from kafkafakes import FakeConsumer, FakeProducer, resume

from waitline.aio import AsyncClient, AsyncRunner
from waitline.aio.kafka import _names_one_of
from waitline.config import Settings
from waitline.errors import BrokerError, InvalidRecordError, WaitlineError, WaitTimeoutError
from waitline.schemas.keys import make_key, partition_for
from waitline.schemas.models import ResumeCommand
from waitline.topics import Topics, load_topics

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def topics() -> Topics:
    return load_topics(REPO / "topics.yaml", "test.")


class Deployment:
    """A fake producer and consumer, and a fake worker between them: each registration it
    sees produced is resolved at once (``resolve``) with a resume on the run's partition."""

    def __init__(self, topics: Topics, resolve: bool = True) -> None:
        self.topics = topics
        self.resolve = resolve
        self.consumer = FakeConsumer(
            {}, partitions=topics.resumes.partitions, topic=topics.resumes.name
        )
        self.producer = FakeProducer({}, on_produce=self._worker)
        self.consumers_built = 0

    def consumer_factory(self, config: dict[str, Any]) -> FakeConsumer:
        self.consumers_built += 1
        self.consumer.config = config
        self.consumer.eof = bool(config.get("enable.partition.eof"))
        return self.consumer

    def producer_factory(self, config: dict[str, Any]) -> FakeProducer:
        self.producer.config = config
        return self.producer

    def client(self) -> AsyncClient:
        return AsyncClient(
            Settings(),
            topics=self.topics,
            producer=self.producer_factory,
            consumer=self.consumer_factory,
        )

    def append_resume(self, wait_id: str, run_id: str, **kwargs: Any) -> None:
        partition = partition_for(run_id.encode(), self.topics.resumes.partitions)
        self.consumer.append(partition, resume(wait_id, run_id, **kwargs))

    def _worker(self, topic: str, key: bytes, value: bytes) -> None:
        body = json.loads(value)
        if self.resolve and topic == self.topics.wait_commands.name and "runId" in body:
            self.append_resume(body["waitId"], body["runId"])


def test_sends_are_keyed_and_acknowledged(topics: Topics) -> None:
    fake = Deployment(topics)

    async def main() -> None:
        async with fake.client() as client:
            event = await client.send_event("email.verified", "user:1", {"a": 1}, ttl="1h")
            await client.register_wait(
                "run-1/w", run_id="run-1", name="n", correlation_key="k", timeout="1h"
            )
            await client.cancel_wait("run-1/w", name="n", correlation_key="k|2")
            assert json.loads(fake.producer.sent[0][2])["eventId"] == event.event_id

    asyncio.run(main())
    assert [(t, k) for t, k, _ in fake.producer.sent] == [
        ("test.events", make_key("email.verified", "user:1")),
        ("test.wait-commands", b"n|k"),
        ("test.wait-commands", b"n|k|2"),
    ]
    assert json.loads(fake.producer.sent[2][2]) == {
        "type": "cancel",
        "waitId": "run-1/w",
        "name": "n",
        "correlationKey": "k|2",
    }
    assert fake.producer.config["partitioner"] == "murmur2_random"
    assert fake.consumers_built == 0  # sending needs no consumer


def test_a_record_the_broker_refuses_raises_broker_error(topics: Topics) -> None:
    fake = Deployment(topics)
    fake.producer.fail = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)

    async def main() -> None:
        async with fake.client() as client:
            with pytest.raises(BrokerError, match="record not delivered") as caught:
                await client.send_event("n", "k")
            assert caught.value.code == KafkaError.MSG_SIZE_TOO_LARGE

    asyncio.run(main())


def test_a_record_the_processor_would_refuse_is_not_sent(topics: Topics) -> None:
    fake = Deployment(topics)

    async def main() -> None:
        async with fake.client() as client:
            with pytest.raises(InvalidRecordError, match="WAITLINE_MAX_RECORD_BYTES"):
                await client.send_event("n", "k", {"blob": "x" * client.settings.max_record_bytes})

    asyncio.run(main())
    assert fake.producer.sent == []


def test_every_client_gets_the_configured_kafka_settings(topics: Topics) -> None:
    fake = Deployment(topics)
    settings = Settings(
        bootstrap_servers="kafka.example:9093",
        kafka={"security.protocol": "SASL_SSL", "sasl.username": "u"},
        sasl_password="pw",
    )
    consumer = FakeConsumer({}, partitions=1, topic=topics.resumes.name)
    configs: list[dict[str, Any]] = []

    def build(config: dict[str, Any]) -> FakeConsumer:
        configs.append(config)
        return consumer

    async def main() -> None:
        client = AsyncClient(
            settings, topics=topics, producer=fake.producer_factory, consumer=fake.consumer_factory
        )
        async with client:
            await client.wait_for_event(
                "w", run_id="r", name="n", correlation_key="k", timeout="1h", wait_timeout=10
            )
        await AsyncRunner(
            lambda _r: asyncio.sleep(0), group_id="g", settings=settings, topics=topics,
            consumer=build,
        ).run(idle_timeout=0.1)  # fmt: skip

    asyncio.run(main())
    for config in (fake.producer.config, fake.consumer.config, *configs):
        assert config["bootstrap.servers"] == "kafka.example:9093"
        assert config["security.protocol"] == "SASL_SSL" and config["sasl.password"] == "pw"


def test_a_client_stays_with_its_first_event_loop(topics: Topics) -> None:
    fake = Deployment(topics)
    client = fake.client()
    asyncio.run(client.send_event("n", "k"))
    with pytest.raises(WaitlineError, match="event loop it was first used on"):
        asyncio.run(client.send_event("n", "k"))


def test_no_io_until_first_use() -> None:
    client = AsyncClient(Settings(topics_file=Path("/nonexistent/topics.yaml")))
    assert client.waiting == 0  # built outside any event loop, touching nothing
    with pytest.raises(WaitlineError, match="topics file not found"):
        _ = client.topics


def test_ten_thousand_waits_hold_one_consumer(topics: Topics) -> None:
    fake = Deployment(topics)

    async def main() -> list[ResumeCommand]:
        async with fake.client() as client:
            resumes = await asyncio.gather(
                *(
                    client.wait_for_event(
                        f"run-{i}/w",
                        run_id=f"run-{i}",
                        name="n",
                        correlation_key=str(i),
                        timeout="1h",
                        wait_timeout=60,
                    )
                    for i in range(10_000)
                )
            )
            assert client.waiting == 0 and client._followed == {}  # nothing left behind
            return resumes

    resumes = asyncio.run(main())
    assert [r.wait_id for r in resumes] == [f"run-{i}/w" for i in range(10_000)]
    assert fake.consumers_built == 1
    assert fake.consumer.closed
    assert fake.consumer.config["enable.partition.eof"] is True
    assert (
        "group.id" in fake.consumer.config and fake.consumer.config["enable.auto.commit"] is False
    )


def test_only_the_waits_own_resume_after_the_start_resolves_it(topics: Topics) -> None:
    fake = Deployment(topics, resolve=False)
    fake.append_resume("run-1/w", "run-1", resume_id="old")  # before the consumer's start

    async def main() -> ResumeCommand:
        async with fake.client() as client, client.expect("run-1/w") as pending:
            await client.register_wait(
                "run-1/w", run_id="run-1", name="n", correlation_key="k", timeout="1h"
            )
            partition = partition_for(b"run-1", topics.resumes.partitions)
            fake.consumer.append(partition, b"garbage")
            fake.consumer.append(partition, b'{"waitId":"run-1/w"}')  # not a resume
            fake.append_resume("run-1/other", "run-1")
            fake.append_resume("run-1/w", "run-1", resume_id="new", outcome="timed_out")
            return await pending.result(30)

    got = asyncio.run(main())
    assert (got.resume_id, got.outcome) == ("new", "timed_out")


def test_wait_timeout_raises_and_stops_following(topics: Topics) -> None:
    fake = Deployment(topics, resolve=False)

    async def main() -> None:
        async with fake.client() as client:
            with pytest.raises(WaitTimeoutError, match="still registered"):
                await client.wait_for_event(
                    "w", run_id="r", name="n", correlation_key="k", timeout="1h", wait_timeout=0.1
                )
            assert client.waiting == 0

    asyncio.run(main())


def test_an_invalid_wait_is_refused_before_anything_starts(topics: Topics) -> None:
    fake = Deployment(topics)

    async def main() -> None:
        async with fake.client() as client:
            with pytest.raises(ValueError):
                await client.wait_for_event(
                    "w", run_id="r", name="n", correlation_key="k", timeout="whenever"
                )

    asyncio.run(main())
    assert fake.consumers_built == 0 and fake.producer.sent == []


def test_a_consumer_that_cannot_start_fails_every_wait(topics: Topics) -> None:
    def broken(_config: dict[str, Any]) -> FakeConsumer:
        raise KafkaException(KafkaError(KafkaError._INVALID_ARG, "bad config"))

    async def main() -> None:
        fake = Deployment(topics)
        async with AsyncClient(
            Settings(), topics=topics, producer=fake.producer_factory, consumer=broken
        ) as client:
            for _ in range(2):
                with pytest.raises(BrokerError, match="bad config"):
                    await client.wait_for_event(
                        "w", run_id="r", name="n", correlation_key="k", timeout="1h"
                    )

    asyncio.run(main())


def test_a_consumer_that_never_reaches_the_end_fails_the_wait(
    topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("waitline.aio.client.START_TIMEOUT", 0.2)
    fake = Deployment(topics)

    def no_eof(config: dict[str, Any]) -> FakeConsumer:
        fake.consumer_factory(config)
        fake.consumer.eof = False  # an unreachable broker never says "end of partition"
        return fake.consumer

    async def main() -> None:
        async with AsyncClient(
            Settings(), topics=topics, producer=fake.producer_factory, consumer=no_eof
        ) as client:
            with pytest.raises(BrokerError, match=r"did not reach the end of test\.resumes"):
                await client.wait_for_event(
                    "w", run_id="r", name="n", correlation_key="k", timeout="1h"
                )
            assert client.waiting == 0

    asyncio.run(main())
    assert fake.producer.sent == []  # nothing registered that nobody follows


def test_close_fails_the_waits_still_pending(topics: Topics) -> None:
    fake = Deployment(topics, resolve=False)

    async def main() -> None:
        client = fake.client()
        wait = asyncio.create_task(
            client.wait_for_event("w", run_id="r", name="n", correlation_key="k", timeout="1h")
        )
        while client.waiting == 0:
            await asyncio.sleep(0.01)
        await client.close()
        with pytest.raises(WaitlineError, match="closed while waiting"):
            await wait
        with pytest.raises(WaitlineError, match="closed"):
            await client.send_event("n", "k")

    asyncio.run(main())
    assert fake.consumer.closed


def test_the_prefilter_only_skips_records_it_is_sure_of() -> None:
    followed = {"run-1/w", 'a"b'}
    assert _names_one_of(resume("run-1/w"), followed)
    assert not _names_one_of(resume("run-2/w"), followed)
    assert _names_one_of(resume('a"b'), followed)  # an escaped id: parsed in full
    assert _names_one_of(b'{"waitId" : "run-2/w"}', followed)  # another layout: parsed
    nested = b'{"waitId":"run-2/w","metadata":{"waitId":"run-1/w"}}'
    assert _names_one_of(nested, followed)  # false positives are fine: parsed, then checked


# -- AsyncRunner -------------------------------------------------------------------------------


def _runner(topics: Topics, consumer: FakeConsumer, handle: Any, **kwargs: Any) -> AsyncRunner:
    def build(config: dict[str, Any]) -> FakeConsumer:
        consumer.config = config
        return consumer

    return AsyncRunner(
        handle, group_id="runners", settings=Settings(), topics=topics, consumer=build, **kwargs
    )


def test_the_runner_hands_each_resume_once_and_commits_in_batches(topics: Topics) -> None:
    consumer = FakeConsumer({}, partitions=2, topic=topics.resumes.name)
    for i in range(1200):
        consumer.append(i % 2, resume(f"w{i}"))
    consumer.append(0, resume("w0"))  # a repeat
    consumer.append(1, b"garbage")
    seen: list[str] = []

    async def handle(r: ResumeCommand) -> None:
        seen.append(r.wait_id)

    runner = _runner(topics, consumer, handle, commit_every=500, commit_interval=3600)
    assert asyncio.run(runner.run(idle_timeout=0.5)) == 1200
    assert sorted(seen) == sorted(f"w{i}" for i in range(1200))
    assert consumer.committed() == {0: 601, 1: 601}
    # In batches, not one a record: by count while running (how the 1,202 records fall into
    # batches depends on how far the loop got when the thread looked), the rest at stop.
    assert 1 <= len(consumer.commits) <= 3
    assert runner.commits == len(consumer.commits)
    assert consumer.closed
    assert consumer.config["group.id"] == "runners"


def test_the_runner_stops_from_a_handler_and_commits_what_it_handled(topics: Topics) -> None:
    consumer = FakeConsumer({}, partitions=1, topic=topics.resumes.name)
    for i in range(10):
        consumer.append(0, resume(f"w{i}"))

    async def handle(r: ResumeCommand) -> None:
        if r.wait_id == "w3":
            runner.stop()

    runner = _runner(topics, consumer, handle, commit_interval=3600)
    assert asyncio.run(runner.run()) == 4
    assert consumer.commits == [(True, [(0, 4)])]  # at stop, waiting for the broker


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_runner_stops_on_a_signal(topics: Topics, sig: signal.Signals) -> None:
    consumer = FakeConsumer({}, partitions=1, topic=topics.resumes.name)
    for i in range(10):
        consumer.append(0, resume(f"w{i}"))
    before = signal.getsignal(sig)

    async def handle(r: ResumeCommand) -> None:
        if r.wait_id == "w1":
            os.kill(os.getpid(), sig)
            await asyncio.sleep(0.05)  # the loop runs its signal handler meanwhile

    runner = _runner(topics, consumer, handle)
    assert asyncio.run(runner.run()) == 2
    assert consumer.committed() == {0: 2}
    assert signal.getsignal(sig) is before


def test_records_of_a_revoked_partition_are_left_to_its_next_owner(topics: Topics) -> None:
    consumer = FakeConsumer({}, partitions=2, topic=topics.resumes.name)
    for i in range(6):
        consumer.append(i % 2, resume(f"w{i}"))
    seen: list[str] = []

    async def handle(r: ResumeCommand) -> None:
        seen.append(r.wait_id)
        if r.wait_id == "w0":
            consumer.revoke([0], reassign=False)  # on the thread's next poll
            while consumer._pending_revoke is not None:
                await asyncio.sleep(0.005)

    runner = _runner(topics, consumer, handle, commit_every=500, commit_interval=3600)
    asyncio.run(runner.run(idle_timeout=0.5))
    # The fake serves partition 0 (w0, w2, w4), then 1. Once 0 is revoked, its records read
    # before are left to its next owner, and none of its offsets is committed by this member
    # (w0's handler was still running: its next owner hands it again).
    assert seen == ["w0", "w1", "w3", "w5"]
    assert consumer.committed() == {1: 3}
