"""The dev stack's restart policy, and the supervisor that follows it (fake processes and
clock: no worker is started here)."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import IO

import pytest

from waitline.supervisor import Backoff, WorkerSupervisor, exit_reason


def _pauses(policy: Backoff, uptimes: list[float]) -> list[float]:
    pauses: list[float] = []
    last: float | None = None
    for uptime in uptimes:
        last = policy.next_pause(last, uptime)
        pauses.append(last)
    return pauses


def test_a_crash_loop_doubles_the_pause_up_to_the_maximum() -> None:
    assert _pauses(Backoff(), [0.5] * 8) == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_run_that_stayed_up_long_enough_starts_the_count_over() -> None:
    assert _pauses(Backoff(), [1, 1, 1, 60, 1, 59.9]) == [1, 2, 4, 1, 2, 4]


def test_the_policy_takes_its_bounds() -> None:
    policy = Backoff(first_s=0.25, max_s=1, reset_after_s=5)
    assert _pauses(policy, [0, 0, 0, 0, 5, 0]) == [0.25, 0.5, 1, 1, 0.25, 0.5]


@pytest.mark.parametrize(
    ("returncode", "reason"),
    [
        (0, "exited with code 0"),
        (1, "exited with code 1"),
        (-9, "killed by SIGKILL"),
        (-15, "killed by SIGTERM"),
        (-200, "killed by signal 200"),
    ],
)
def test_exit_reason(returncode: int, reason: str) -> None:
    assert exit_reason(returncode) == reason


class FakeProcess:
    """A worker process that writes ``output`` to its log, then runs until ``exit``."""

    def __init__(self, pid: int, out: IO[bytes], output: bytes) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.terminated = False
        out.write(output)
        out.flush()

    def exit(self, returncode: int) -> None:
        self.returncode = returncode

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.terminated = True
        self.returncode = -15

    def kill(self) -> None:
        self.returncode = -9

    def wait(self, timeout: float | None = None) -> int:
        assert self.returncode is not None
        return self.returncode


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Spawner:
    def __init__(self) -> None:
        self.started: list[FakeProcess] = []
        self.output = b"booting\ncrash: it went wrong\n"

    def __call__(self, out: IO[bytes]) -> FakeProcess:
        proc = FakeProcess(100 + len(self.started), out, self.output)
        self.started.append(proc)
        return proc


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def spawner() -> Spawner:
    return Spawner()


@pytest.fixture
def supervisor(tmp_path: Path, clock: Clock, spawner: Spawner) -> WorkerSupervisor:
    return WorkerSupervisor(
        ["worker"], {}, tmp_path / "worker.log", backoff=Backoff(), clock=clock, spawn=spawner
    )


def test_a_crash_loop_is_paced_by_the_back_off(
    supervisor: WorkerSupervisor, clock: Clock, spawner: Spawner
) -> None:
    supervisor.start()
    starts = [clock.now]
    for _ in range(7):
        spawner.started[-1].exit(1)
        runs = len(spawner.started)
        while len(spawner.started) == runs:  # tended as often as the dev loop does
            clock.now += 0.2
            supervisor.tend()
        starts.append(clock.now)
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(starts)]
    # Each exit is noticed at the next tend (0.2 s), then the pause runs.
    assert gaps == [1.2, 2.2, 4.2, 8.2, 16.2, 30.2, 30.2]


def test_the_death_is_logged_with_its_reason_and_the_end_of_the_runs_log(
    supervisor: WorkerSupervisor,
    clock: Clock,
    spawner: Spawner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="waitline.dev")
    supervisor.start()
    assert supervisor.pid == 100
    clock.now += 42
    spawner.output = b""  # the second run writes nothing
    spawner.started[0].exit(-9)
    supervisor.tend()
    assert supervisor.pid is None
    clock.now += 1
    supervisor.tend()
    clock.now += 3
    spawner.started[1].exit(3)
    supervisor.tend()

    messages = [r.getMessage() for r in caplog.records]
    log_path = supervisor.log_path
    assert messages[0] == "worker started (pid 100)"
    assert messages[1] == (
        "worker (pid 100) killed by SIGKILL after 42.0s; starting it again in 1s; "
        f"the end of its log {log_path}:\n  | booting\n  | crash: it went wrong"
    )
    assert messages[2] == "worker started (pid 101)"
    assert messages[3] == (
        "worker (pid 101) exited with code 3 after 3.0s; starting it again in 2s; "
        f"it wrote nothing to {log_path}"
    )
    # One file, each run behind its own header.
    lines = log_path.read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "=== waitline dev: worker run 1",
        "booting",
        "crash: it went wrong",
        "=== waitline dev: worker run 2",
    ]


def test_stop_ends_the_worker_and_any_pending_restart(
    supervisor: WorkerSupervisor, clock: Clock, spawner: Spawner
) -> None:
    supervisor.start()
    supervisor.stop(grace_s=1)
    assert spawner.started[0].terminated
    clock.now += 60
    supervisor.tend()
    assert len(spawner.started) == 1

    supervisor.start()
    spawner.started[1].exit(1)
    supervisor.tend()  # a restart is now due in 1 s
    supervisor.stop(grace_s=1)
    assert not spawner.started[1].terminated  # it had exited: nothing to signal
    clock.now += 60
    supervisor.tend()
    assert len(spawner.started) == 2
