"""The synchronous Runner against a fake consumer: batched commits, the LRU of resumeIds,
rebalances, offset gaps and a stop on SIGINT or SIGTERM."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from kafkafakes import FakeClock, FakeConsumer, resume

from waitline.client import Runner
from waitline.config import Settings
from waitline.resumes import OffsetCommits, SeenResumes
from waitline.schemas.models import ResumeCommand
from waitline.topics import Topics, load_topics

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def topics() -> Topics:
    return load_topics(REPO / "topics.yaml", "test.")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr("waitline.client.time.monotonic", clock)
    return clock


def _runner(
    topics: Topics,
    consumer: FakeConsumer,
    handler: Any = None,
    **kwargs: Any,
) -> tuple[Runner, list[ResumeCommand]]:
    seen: list[ResumeCommand] = []

    def handle(resume: ResumeCommand) -> None:
        seen.append(resume)
        if handler is not None:
            handler(resume)

    def build(config: dict[str, Any]) -> FakeConsumer:
        consumer.config = config
        return consumer

    runner = Runner(
        handle, group_id="runners", settings=Settings(), topics=topics, consumer=build, **kwargs
    )
    return runner, seen


def test_each_resume_is_handled_and_committed_in_batches(topics: Topics, clock: FakeClock) -> None:
    consumer = FakeConsumer({}, partitions=2, clock=clock)
    for i in range(1200):
        consumer.append(i % 2, resume(f"w{i}"))
    runner, seen = _runner(topics, consumer, commit_every=500, commit_interval=3600)
    assert runner.run(idle_timeout=1) == 1200
    assert len(seen) == 1200
    # The fake serves partition 0, then 1. Two batches of 500 in the background, then the
    # rest on stop, waiting for the broker.
    assert consumer.commits == [
        (False, [(0, 500)]),
        (False, [(0, 600), (1, 400)]),
        (True, [(1, 600)]),
    ]
    assert consumer.closed
    assert consumer.config["enable.auto.commit"] is False
    assert consumer.config["group.id"] == "runners"


def test_a_trickle_is_committed_every_interval(topics: Topics, clock: FakeClock) -> None:
    consumer = FakeConsumer({}, partitions=1, clock=clock)

    def handler(r: ResumeCommand) -> None:
        clock.now += 0.3  # each handler takes 0.3 s

    for i in range(10):
        consumer.append(0, resume(f"w{i}"))
    runner, _ = _runner(topics, consumer, handler, commit_every=500, commit_interval=1.0)
    runner.run(idle_timeout=1)
    # 10 records at 0.3 s: a commit after every fourth record, none waits for 500.
    assert consumer.commits == [(False, [(0, 4)]), (False, [(0, 8)]), (False, [(0, 10)])]


def test_repeats_are_skipped_by_an_lru_of_resume_ids(topics: Topics, clock: FakeClock) -> None:
    consumer = FakeConsumer({}, partitions=1, clock=clock)
    for rid in ["a", "b", "a", "c", "a", "b"]:
        consumer.append(0, resume(f"w-{rid}", resume_id=rid))
    runner, seen = _runner(topics, consumer, remember=2)
    runner.run(idle_timeout=1)
    # a, b; a again refreshes a; c evicts b (not a); a is skipped; b was forgotten: handled.
    assert [r.resume_id for r in seen] == ["a", "b", "c", "b"]
    assert consumer.committed() == {0: 6}  # skipped records are committed too


def test_invalid_records_are_skipped_and_committed(topics: Topics, clock: FakeClock) -> None:
    consumer = FakeConsumer({}, partitions=1, clock=clock)
    for value in [b"garbage", b"{}", resume("w1"), b""]:
        consumer.append(0, value)
    runner, seen = _runner(topics, consumer)
    runner.run(idle_timeout=1)
    assert [r.wait_id for r in seen] == ["w1"]
    assert consumer.committed() == {0: 4}


def test_a_revoked_partition_commits_what_was_handled_at_once(
    topics: Topics, clock: FakeClock
) -> None:
    consumer = FakeConsumer({}, partitions=2, clock=clock)
    for i in range(6):
        consumer.append(i % 2, resume(f"w{i}"))

    def handler(r: ResumeCommand) -> None:
        if r.wait_id == "w2":
            consumer.revoke([0])

    runner, seen = _runner(topics, consumer, handler, commit_every=500, commit_interval=3600)
    runner.run(idle_timeout=1)
    # Handled before the revoke: w0, w1, w2 (partition 0 at offsets 0 and 1). The revoke
    # commits partition 0 only, waiting for the broker; the rest is committed at stop.
    assert consumer.commits[0] == (True, [(0, 2)])
    assert sorted(r.wait_id for r in seen) == [f"w{i}" for i in range(6)]
    assert consumer.committed() == {0: 3, 1: 3}


def test_a_record_a_fetch_skipped_is_read_again(topics: Topics, clock: FakeClock) -> None:
    consumer = FakeConsumer({}, partitions=1, clock=clock)
    for i in range(4):
        consumer.append(0, resume(f"w{i}"))
    consumer.skip_once(0, 1)
    consumer.position[0] = 0
    runner, seen = _runner(topics, consumer)
    runner.run(idle_timeout=1)
    assert consumer.seeks == [(0, 1)]
    assert [r.wait_id for r in seen] == ["w0", "w1", "w2", "w3"]


def test_a_failing_handler_commits_only_what_it_handled(topics: Topics, clock: FakeClock) -> None:
    consumer = FakeConsumer({}, partitions=1, clock=clock)
    for i in range(5):
        consumer.append(0, resume(f"w{i}"))

    def handler(r: ResumeCommand) -> None:
        if r.wait_id == "w3":
            raise RuntimeError("boom")

    runner, _ = _runner(topics, consumer, handler)
    with pytest.raises(RuntimeError, match="boom"):
        runner.run()
    assert consumer.committed() == {0: 3}  # w3 comes again to the next runner
    assert consumer.closed


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_runner_after_the_current_handler(
    topics: Topics, clock: FakeClock, sig: signal.Signals
) -> None:
    consumer = FakeConsumer({}, partitions=1, clock=clock)
    for i in range(5):
        consumer.append(0, resume(f"w{i}"))
    finished: list[str] = []

    def handler(r: ResumeCommand) -> None:
        if r.wait_id == "w1":
            os.kill(os.getpid(), sig)  # delivered here, in the main thread
        finished.append(r.wait_id)

    before = signal.getsignal(sig)
    runner, _ = _runner(topics, consumer, handler)
    assert runner.run() == 2  # no KeyboardInterrupt: w1's handler finished, then it stopped
    assert finished == ["w0", "w1"]
    assert consumer.commits[-1] == (True, [(0, 2)])
    assert consumer.closed
    assert signal.getsignal(sig) is before  # put back


def test_stop_from_a_handler(topics: Topics, clock: FakeClock) -> None:
    consumer = FakeConsumer({}, partitions=1, clock=clock)
    for i in range(5):
        consumer.append(0, resume(f"w{i}"))
    runner, _ = _runner(topics, consumer, lambda r: runner.stop() if r.wait_id == "w2" else 0)
    assert runner.run() == 3
    assert consumer.committed() == {0: 3}


def test_seen_resumes_is_an_lru_of_its_size() -> None:
    seen = SeenResumes(3)
    assert [seen.first_time(i) for i in "abcab"] == [True, True, True, False, False]
    seen.add("d")  # evicts c, the least recent
    assert "c" not in seen and {"a", "b", "d"} <= {i for i in "abd" if i in seen}
    assert len(seen) == 3
    with pytest.raises(ValueError):
        SeenResumes(0)


def test_offset_commits_by_count_interval_and_partition() -> None:
    clock = FakeClock()
    commits = OffsetCommits(every=3, interval=1.0, clock=clock)
    assert not commits.due() and commits.take() == []
    commits.handled("t", 0, 10)
    commits.handled("t", 1, 4)
    assert not commits.due()
    commits.handled("t", 0, 11)
    assert commits.due()  # by count
    assert [(tp.partition, tp.offset) for tp in commits.take()] == [(0, 12), (1, 5)]
    commits.handled("t", 0, 12)
    assert not commits.due()
    clock.now += 1.0
    assert commits.due()  # by interval
    from confluent_kafka import TopicPartition

    commits.handled("t", 1, 5)
    assert [(tp.partition, tp.offset) for tp in commits.take([TopicPartition("t", 1)])] == [(1, 6)]
    commits.drop([TopicPartition("t", 0)])
    assert commits.take() == [] and commits.pending == 0
