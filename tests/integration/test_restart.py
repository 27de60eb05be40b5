"""A worker restarted cleanly keeps its pending waits and buffered events (local RocksDB state)."""

from __future__ import annotations

import signal

import pytest
from harness import Stack

pytestmark = pytest.mark.integration


def test_clean_restart_keeps_pending_waits_and_buffered_events(stack: Stack, uid: str) -> None:
    c = stack.client
    worker = stack.start_worker()
    c.register_wait(
        f"{uid}/pending", run_id="r1", name="kyc.passed", correlation_key=uid, timeout="10m"
    )
    early = c.send_event("kyc.started", uid, {"early": True})
    c.register_wait(
        f"{uid}/marker", run_id="r0", name="kyc.started", correlation_key=uid, timeout="10m"
    )
    c.flush()
    stack.await_resume(f"{uid}/marker")  # the worker has applied everything above

    assert worker.stop(signal.SIGTERM) == 0
    assert "worker stopped" in worker.log()

    stack.start_worker()
    c.send_event("kyc.passed", uid, {"ok": True})
    c.register_wait(
        f"{uid}/late", run_id="r2", name="kyc.started", correlation_key=uid, timeout="10m"
    )
    c.flush()
    pending = stack.await_resume(f"{uid}/pending")
    assert pending.outcome == "matched" and pending.event is not None
    late = stack.await_resume(f"{uid}/late")
    assert late.event is not None and late.event.event_id == early.event_id
    # Nothing resolved twice across the restart (the second worker resumed from stored offsets).
    assert len(stack.resumes_for(f"{uid}/marker")) == 1
