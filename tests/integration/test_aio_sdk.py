"""The asyncio SDK against a live worker: many waits on one consumer, the runner."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import Consumer
from harness import Stack

from waitline.aio import AsyncClient, AsyncRunner
from waitline.errors import WaitTimeoutError
from waitline.schemas.models import ResumeCommand

pytestmark = pytest.mark.integration


class CountingConsumers:
    def __init__(self) -> None:
        self.configs: list[dict[str, Any]] = []

    def __call__(self, config: dict[str, Any]) -> Consumer:
        self.configs.append(config)
        return Consumer(config)


def test_concurrent_waits_share_one_consumer(live_stack: Stack, uid: str) -> None:
    consumers = CountingConsumers()

    async def main() -> list[ResumeCommand]:
        async with AsyncClient(
            live_stack.settings, topics=live_stack.topics, consumer=consumers
        ) as client:
            # An early event: sent before its wait registers, it still counts.
            await client.send_event("aio.early", uid, {"n": -1})

            async def one(i: int) -> ResumeCommand:
                return await client.wait_for_event(
                    f"{uid}/w{i}",
                    run_id=f"run-{uid}-{i}",
                    name="aio.go",
                    correlation_key=f"{uid}-{i}",
                    timeout="5m",
                    wait_timeout=60,
                )

            waits = [asyncio.create_task(one(i)) for i in range(200)]
            early = asyncio.create_task(
                client.wait_for_event(
                    f"{uid}/early",
                    run_id=f"run-{uid}-early",
                    name="aio.early",
                    correlation_key=uid,
                    timeout="5m",
                    wait_timeout=60,
                )
            )
            for _ in range(3000):  # every wait followed before its event is sent
                if client.waiting == 201 or any(w.done() for w in waits):
                    break
                await asyncio.sleep(0.01)
            assert client.waiting == 201, [w.exception() for w in waits if w.done()][:1]
            await asyncio.gather(
                *(client.send_event("aio.go", f"{uid}-{i}", {"n": i}) for i in range(200))
            )
            resumes = await asyncio.gather(*waits, early)
            assert client.waiting == 0
            return resumes

    resumes = asyncio.run(main())
    assert len(consumers.configs) == 1  # one consumer for all 201 waits
    assert consumers.configs[0]["enable.partition.eof"] is True
    assert [r.wait_id for r in resumes[:-1]] == [f"{uid}/w{i}" for i in range(200)]
    assert {r.outcome for r in resumes} == {"matched"}
    assert [r.event.data["n"] for r in resumes if r.event] == [*range(200), -1]


def test_timeouts_cancels_and_a_client_side_deadline(live_stack: Stack, uid: str) -> None:
    async def main() -> None:
        async with AsyncClient(live_stack.settings, topics=live_stack.topics) as client:
            timed_out = asyncio.create_task(
                client.wait_for_event(
                    f"{uid}/t",
                    run_id=f"run-{uid}",
                    name="aio.never",
                    correlation_key=uid,
                    timeout="1s",
                    on_timeout="continue",
                    wait_timeout=30,
                )
            )
            async with client.expect(f"{uid}/c") as pending:
                await client.register_wait(
                    f"{uid}/c", run_id=f"run-{uid}", name="aio.never", correlation_key=uid,
                    timeout="5m",
                )  # fmt: skip
                await client.cancel_wait(f"{uid}/c", name="aio.never", correlation_key=uid)
                cancelled = await pending.result(30)
            assert (cancelled.outcome, cancelled.action) == ("cancelled", "cancel")
            resume = await timed_out
            assert (resume.outcome, resume.action, resume.event) == ("timed_out", "continue", None)
            with pytest.raises(WaitTimeoutError, match="still registered"):
                await client.wait_for_event(
                    f"{uid}/x", run_id="r", name="aio.never", correlation_key=uid,
                    timeout="5m", wait_timeout=0.5,
                )  # fmt: skip
            assert client.waiting == 0

    asyncio.run(main())


def test_async_runner_hands_each_resume_once_and_commits(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    ids = {f"{uid}/r{i}" for i in range(5)}
    for wait_id in sorted(ids):
        c.register_wait(
            wait_id, run_id=f"run-{wait_id}", name="aio.run", correlation_key=uid, timeout="5m"
        )
    c.send_event("aio.run", uid)
    c.flush()
    live_stack.await_resumes(ids)
    # A resolved wait registered again re-emits its resume: handed once all the same.
    c.register_wait(
        f"{uid}/r0", run_id=f"run-{uid}/r0", name="aio.run", correlation_key=uid, timeout="5m"
    )
    c.flush()
    live_stack.reader("resumes").wait_for(
        lambda _: len(live_stack.resumes_for(f"{uid}/r0")) == 2, 30, "the re-emitted resume"
    )
    # A later resume on the repeat's partition (the same run): once the runner has it, it has
    # read the repeat.
    sentinel = f"{uid}/sentinel"
    c.register_wait(
        sentinel, run_id=f"run-{uid}/r0", name="aio.sentinel", correlation_key=uid, timeout="5m"
    )
    c.send_event("aio.sentinel", uid)
    c.flush()
    live_stack.await_resume(sentinel)
    group = f"{live_stack.prefix}aio-runner-{uid}"

    async def main() -> tuple[list[ResumeCommand], int]:
        seen: list[ResumeCommand] = []
        sentinels: list[ResumeCommand] = []

        async def handle(resume: ResumeCommand) -> None:
            await asyncio.sleep(0)  # a handler is a coroutine
            if resume.wait_id in ids:
                seen.append(resume)
            if resume.wait_id == sentinel:
                sentinels.append(resume)  # the repeat came before it on their partition
            if sentinels and ids <= {r.wait_id for r in seen}:
                runner.stop()

        runner = AsyncRunner(
            handle, group_id=group, settings=live_stack.settings, topics=live_stack.topics
        )
        await runner.run(idle_timeout=60)
        return seen, runner.commits

    seen, commits = asyncio.run(main())
    assert sorted(r.wait_id for r in seen) == sorted(ids)  # each exactly once
    assert commits >= 1

    async def again() -> list[str]:
        runner = AsyncRunner(
            lambda _r: asyncio.sleep(0),
            group_id=group,
            settings=live_stack.settings,
            topics=live_stack.topics,
        )
        return [r.wait_id async for r in runner.resumes(idle_timeout=8) if r.wait_id in ids]

    assert asyncio.run(again()) == []  # committed: the group's next member starts after them
