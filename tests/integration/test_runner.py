"""The SDK's runner loop consumes resume commands through a consumer group."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from harness import Stack

from waitline.client import Runner
from waitline.schemas.models import ResumeCommand

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


_RUNNER = """
import sys
from waitline import Runner

def handle(resume):
    print(resume.wait_id, resume.outcome, flush=True)

print("started", flush=True)
print("handled", Runner(handle, group_id=sys.argv[1]).run(), flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_runner_stops_on_a_signal_without_a_traceback_and_commits(
    live_stack: Stack, uid: str, sig: signal.Signals
) -> None:
    group = f"{live_stack.prefix}runner-{uid}"
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, group],
        env=live_stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        c = live_stack.client
        ids = [f"{uid}/s{i}" for i in range(3)]
        for wait_id in ids:
            c.register_wait(
                wait_id,
                run_id=f"run-{wait_id}",
                name="runner.sig",
                correlation_key=uid,
                timeout="5m",
            )
        c.send_event("runner.sig", uid)
        c.flush()
        handled: set[str] = set()
        while handled != set(ids):  # each readline blocks until a resume was handled
            line = proc.stdout.readline()
            assert line, f"the runner exited: {proc.communicate()[1]}"
            if line.startswith(uid):  # the module's other tests share the topics
                handled.add(line.split()[0])
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert out.strip().splitlines()[-1].startswith("handled ")
    # The offsets were committed on the way out: the group's next member starts after them.
    again = Runner(
        lambda _r: None, group_id=group, settings=live_stack.settings, topics=live_stack.topics
    )
    assert [r.wait_id for r in again.iter_resumes(idle_timeout=8) if r.wait_id in ids] == []
