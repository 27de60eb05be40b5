"""``waitline worker --processes N``: N group members under one command, started and stopped
together (waitline/worker.py ``run_workers``)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from harness import Stack, WorkerProcess

pytestmark = pytest.mark.integration

STARTED = r"started worker process (worker-\d) \(pid (\d+)\)"


def _children(worker: WorkerProcess) -> dict[str, int]:
    return {name: int(pid) for name, pid in worker.await_log(STARTED, count=2)}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie has exited; only its parent has not collected its status yet.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] == "Z"


def _await_gone(pids: list[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"processes {pids} still running after {timeout}s"
        time.sleep(0.05)  # polling /proc, not a settle delay


def test_processes_split_the_partitions_and_stop_together(stack: Stack, uid: str) -> None:
    worker = stack.start_worker({"WAITLINE_PROCESSES": "2"})
    children = _children(worker)
    # Both children end up owning partitions: each logs a "ready" line of its own.
    for name in children:
        worker.await_log(rf"\[{name}\] INFO \S+ ready: partitions \[\d", timeout=60)

    c = stack.client
    keys = [f"{uid}-{n}" for n in range(32)]  # spread over all 8 partitions
    for key in keys:
        c.register_wait(
            f"{key}/w", run_id=key, name="doc.signed", correlation_key=key, timeout="10m"
        )
    for key in keys:
        c.send_event("doc.signed", key, {"by": key})
    c.flush()
    resumes = stack.await_resumes({f"{key}/w" for key in keys})
    assert {r.outcome for r in resumes.values()} == {"matched"}

    assert worker.stop(signal.SIGTERM) == 0
    log = worker.log()
    assert log.count("INFO waitline.worker worker stopped after") == 2, log
    _await_gone(list(children.values()))


def test_a_process_that_dies_stops_the_command(stack: Stack) -> None:
    worker = stack.start_worker({"WAITLINE_PROCESSES": "2"})
    children = _children(worker)
    worker.await_log(r"\[worker-1\] INFO \S+ worker started")
    os.kill(children["worker-1"], signal.SIGKILL)

    assert worker.proc.wait(60) == 1
    line = f"worker process worker-1 (pid {children['worker-1']}) exited with code -9"
    assert f"waitline: error: {line}" in worker.log()
    _await_gone([children["worker-0"]])


def test_processes_stop_when_the_command_is_killed(stack: Stack) -> None:
    worker = stack.start_worker({"WAITLINE_PROCESSES": "2"})
    children = _children(worker)
    worker.await_log(r"worker started group=", count=2)
    worker.stop(signal.SIGKILL)

    _await_gone(list(children.values()))
    log = worker.log()
    assert log.count("the parent process is gone; stopping") == 2, log
    assert log.count("INFO waitline.worker worker stopped after") == 2, log
