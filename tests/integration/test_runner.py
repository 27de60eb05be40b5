"""The SDK's runner loop consumes resume commands through a consumer group."""

from __future__ import annotations

import pytest
from harness import Stack

from schemas.models import ResumeCommand
from waitline.client import Runner

pytestmark = pytest.mark.integration


def test_runner_hands_each_resume_to_the_handler_once(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    ids = {f"{uid}/w{i}" for i in range(3)}
    for wait_id in sorted(ids):
        c.register_wait(
            wait_id, run_id=f"run-{wait_id}", name="runner.go", correlation_key=uid, timeout="5m"
        )
    c.send_event("runner.go", uid)
    # Re-registering a resolved wait re-emits its resume: the runner must not hand it twice.
    c.flush()
    live_stack.await_resumes(ids)
    c.register_wait(
        f"{uid}/w0", run_id=f"run-{uid}/w0", name="runner.go", correlation_key=uid, timeout="5m"
    )
    c.flush()
    live_stack.reader("resumes").wait_for(
        lambda _: len(live_stack.resumes_for(f"{uid}/w0")) == 2, 30, "the re-emitted resume"
    )

    seen: list[ResumeCommand] = []
    runner = Runner(
        seen.append,
        group_id=f"{live_stack.prefix}runner",
        settings=live_stack.settings,
        topics=live_stack.topics,
    )
    for resume in runner.iter_resumes(idle_timeout=30):
        seen.append(resume)
        if ids <= {r.wait_id for r in seen}:
            break
    mine = [r for r in seen if r.wait_id in ids]
    assert sorted(r.wait_id for r in mine) == sorted(ids)  # each exactly once
    assert {r.outcome for r in mine} == {"matched"}
