"""State follows its partitions: restore from the changelog, SIGKILL, exactly-once mode."""

from __future__ import annotations

import signal
import time

import pytest
from harness import Stack

pytestmark = pytest.mark.integration


def _seed(stack: Stack, uid: str) -> str:
    """A pending wait, a buffered event and a used idempotency key; returns the event id."""
    c = stack.client
    c.register_wait(
        f"{uid}/pending", run_id="r1", name="kyc.passed", correlation_key=uid, timeout="10m"
    )
    early = c.send_event("kyc.started", uid, {"early": True}, idempotency_key="once")
    c.register_wait(
        f"{uid}/marker", run_id="r0", name="kyc.started", correlation_key=uid, timeout="10m"
    )
    c.flush()
    stack.await_resume(f"{uid}/marker")
    return early.event_id


def _check_after_recovery(stack: Stack, uid: str, early_id: str) -> None:
    c = stack.client
    c.send_event("kyc.started", uid, {"dup": True}, idempotency_key="once")  # still deduplicated
    c.register_wait(
        f"{uid}/late",
        run_id="r2",
        name="kyc.started",
        correlation_key=uid,
        timeout="10m",
        lookback="1h",
    )
    c.send_event("kyc.passed", uid, {"ok": True})
    c.flush()
    assert stack.await_resume(f"{uid}/pending").outcome == "matched"
    late = stack.await_resume(f"{uid}/late")
    assert late.event is not None and late.event.event_id == early_id
    assert len(stack.resumes_for(f"{uid}/marker")) == 1


def test_fresh_state_dir_restores_from_the_changelog(stack: Stack, uid: str) -> None:
    first = stack.start_worker()
    early_id = _seed(stack, uid)
    assert first.stop(signal.SIGTERM) == 0
    # Another machine: an empty state directory.
    second = stack.start_worker({"WAITLINE_STATE_DIR": str(stack.tmp / "other-machine")})
    _check_after_recovery(stack, uid, early_id)
    assert "restored partition" in second.log()


def test_sigkill_then_restart_keeps_every_promise(stack: Stack, uid: str) -> None:
    first = stack.start_worker()
    early_id = _seed(stack, uid)
    c = stack.client
    ids = [f"{uid}/bulk-{i}" for i in range(300)]
    for i, wait_id in enumerate(ids):
        c.register_wait(
            wait_id, run_id=f"run-{i}", name="bulk", correlation_key=f"{uid}-{i}", timeout="10m"
        )
        c.send_event("bulk", f"{uid}-{i}", {"i": i})
    c.flush()
    stack.reader("resumes").wait_for(
        lambda _: len(stack.resumes_for(ids[-1])) > 0 or len(stack.resumes_for(ids[50])) > 0,
        60,
        "some bulk resumes",
    )
    first.stop(signal.SIGKILL)  # mid-stream, most likely
    stack.start_worker()
    found = stack.await_resumes(set(ids), timeout=90)
    for i, wait_id in enumerate(ids):
        resume = found[wait_id]
        assert resume.event is not None and resume.event.data == {"i": i}
        assert len({r.model_dump_json() for r in stack.resumes_for(wait_id)}) == 1
    _check_after_recovery(stack, uid, early_id)


def test_timeout_due_while_no_worker_ran_fires_after_restore(stack: Stack, uid: str) -> None:
    worker = stack.start_worker()
    c = stack.client

    def marker(name: str) -> None:  # a cancelled wait on the same partition: all before it applied
        c.register_wait(
            f"{uid}/{name}", run_id="m", name="never", correlation_key=uid, timeout="1h"
        )
        c.cancel_wait(f"{uid}/{name}", name="never", correlation_key=uid)
        c.flush()
        stack.await_resume(f"{uid}/{name}")

    marker("worker-is-up")
    c.register_wait(
        f"{uid}/t",
        run_id="r",
        name="never",
        correlation_key=uid,
        timeout="3s",
        on_timeout="continue",
    )
    marker("wait-is-registered")
    worker.stop(signal.SIGKILL)
    registered = time.time()
    while time.time() < registered + 3.5:  # the deadline passes with no owner
        assert not stack.resumes_for(f"{uid}/t")
    stack.start_worker({"WAITLINE_STATE_DIR": str(stack.tmp / "elsewhere")})
    resume = stack.await_resume(f"{uid}/t")
    assert (resume.outcome, resume.action) == ("timed_out", "continue")
    assert resume.resolved_at >= resume.registered_at + 3000


def test_exactly_once_mode_matches_times_out_and_recovers(stack: Stack, uid: str) -> None:
    env = {"WAITLINE_GUARANTEE": "exactly_once"}
    first = stack.start_worker(env)
    early_id = _seed(stack, uid)
    c = stack.client
    c.register_wait(f"{uid}/t", run_id="r", name="never", correlation_key=uid, timeout="1s")
    c.flush()
    assert stack.await_resume(f"{uid}/t").outcome == "timed_out"
    first.stop(signal.SIGKILL)
    stack.start_worker({**env, "WAITLINE_STATE_DIR": str(stack.tmp / "eos-2")})
    _check_after_recovery(stack, uid, early_id)
    assert "guarantee=exactly_once" in stack.workers[-1].log()
