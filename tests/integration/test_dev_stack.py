"""``waitline dev`` as a real process on its own embedded broker: it starts a SIGKILLed worker
again, which resumes from its state; Ctrl-C stops it with exit 0; and whichever way it ends,
start-up failures included, its temporary directory goes with it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import REPO, WorkerProcess

from waitline.broker import free_port
from waitline.client import Client
from waitline.config import Settings
from waitline.schemas.models import OnTimeout, ResumeCommand

pytestmark = pytest.mark.integration

STARTED = r"waitline.dev worker started \(pid (\d+)\)"

StartDev = Callable[..., WorkerProcess]


@pytest.fixture
def temp_root(tmp_path: Path) -> Path:
    """The TMPDIR of the dev process: where its temporary directory is made."""
    root = tmp_path / "tmp"
    root.mkdir()
    return root


@pytest.fixture
def start_dev(tmp_path: Path, temp_root: Path) -> Iterator[StartDev]:
    """Start ``waitline dev ARGS`` (its stdout and stderr in one log), with no ``WAITLINE_*``
    variable but those given; a dev process still running at the end gets a SIGTERM."""
    started: list[WorkerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WAITLINE_")}
        log_path = tmp_path / f"dev-{len(started)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "waitline", "dev", *args],
                env={**clean, "TMPDIR": str(temp_root), **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        dev = WorkerProcess(proc, log_path)  # a process and its log, as for a worker
        started.append(dev)
        return dev

    yield start
    for dev in started:
        if dev.alive():
            dev.stop(signal.SIGTERM, timeout=120)


def _exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_killed_worker_is_started_again_and_resumes(
    start_dev: StartDev, temp_root: Path, uid: str
) -> None:
    port = free_port()
    dev = start_dev("--port", str(port))
    [first_pid] = dev.await_log(STARTED, timeout=60)
    [scratch] = temp_root.iterdir()
    client = Client(
        Settings(
            bootstrap_servers=f"127.0.0.1:{port}",
            topics_file=REPO / "topics.yaml",
            topic_prefix="",
        )
    )

    def follow(
        name: str, wait_id: str, timeout: str = "5m", on_timeout: OnTimeout = "fail"
    ) -> ResumeCommand:
        return client.wait_for_event(
            f"{uid}/{wait_id}",
            run_id=f"run-{uid}",
            name=name,
            correlation_key=uid,
            timeout=timeout,
            on_timeout=on_timeout,
            wait_timeout=90,
        )

    # The worker answers, and a wait is pending in its state when it dies: a wait registered
    # after it on the same name and key times out first, so the worker has read it.
    client.send_event("email.verified", uid, {"n": 1})
    assert follow("email.verified", "before").outcome == "matched"
    client.register_wait(
        f"{uid}/pending", run_id=f"run-{uid}", name="doc.signed", correlation_key=uid, timeout="5m"
    )
    marker = follow("doc.signed", "marker", timeout="1s", on_timeout="continue")
    assert marker.outcome == "timed_out"

    os.kill(int(first_pid), signal.SIGKILL)
    died = rf"waitline.dev worker \(pid {first_pid}\) killed by SIGKILL after [\d.]+s; "
    dev.await_log(died + r"starting it again in 1s; the end of its log \S+worker.log:\n  \| ")
    second_pid = dev.await_log(STARTED, count=2)[1]
    assert second_pid != first_pid

    # The restarted worker resolves the wait the killed one held, and serves new ones.
    client.send_event("doc.signed", uid, {"by": "ada"})
    client.flush()
    pending = follow("doc.signed", "pending")  # registered again: hands back its resume
    assert pending.outcome == "matched"
    assert pending.event is not None and pending.event.data == {"by": "ada"}
    client.send_event("kyc.passed", uid, {"n": 2})
    after = follow("kyc.passed", "after")
    assert after.outcome == "matched"
    assert after.event is not None and after.event.data == {"n": 2}
    assert dev.alive()
    assert (scratch / "worker.log").read_text().count("=== waitline dev: worker run") == 2

    assert dev.stop(signal.SIGINT, timeout=120) == 0
    assert list(temp_root.iterdir()) == []
    assert _exited(int(second_pid))
    assert "stopping ..." in dev.log()


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(
    ("case", "exit_code", "message"),
    [
        ("port taken", 1, "cannot start the embedded broker: port {port} on 127.0.0.1 is already"),
        ("bad setting", 2, "WAITLINE_EVENT_TTL"),
    ],
)
def test_a_failed_start_up_says_why_in_one_line_and_leaves_no_directory(
    start_dev: StartDev,
    temp_root: Path,
    taken_port: int,
    case: str,
    exit_code: int,
    message: str,
) -> None:
    env = {"WAITLINE_EVENT_TTL": "forever"} if case == "bad setting" else {}
    dev = start_dev("--port", str(taken_port), env=env)
    assert dev.proc.wait(60) == exit_code, dev.log()
    errors = [line for line in dev.log().splitlines() if line.startswith("waitline: error: ")]
    assert len(errors) == 1 and message.format(port=taken_port) in errors[0], dev.log()
    assert "Traceback" not in dev.log()
    assert list(temp_root.iterdir()) == []


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_the_stack_stops_when_its_broker_dies(start_dev: StartDev, temp_root: Path) -> None:
    dev = start_dev("--port", str(free_port()), "--workers", "0")
    dev.await_log("waitline dev is running")
    [broker] = _children(dev.proc.pid)  # no worker: the only child
    os.kill(broker, signal.SIGKILL)

    assert dev.proc.wait(60) == 1, dev.log()
    errors = [line for line in dev.log().splitlines() if line.startswith("waitline: error: ")]
    assert len(errors) == 1, dev.log()
    assert "the embedded broker on 127.0.0.1:" in errors[0]
    assert "exited with code -9; the data it kept in memory is gone" in errors[0]
    assert "Traceback" not in dev.log()
    assert list(temp_root.iterdir()) == []


def test_the_banner_exports_work_as_printed(start_dev: StartDev, tmp_path: Path, uid: str) -> None:
    """``waitline dev --port P --state-dir D`` (``make dev ARGS=...``): the banner's exports,
    pasted into another shell, reach the broker and the state, and its inspect command reads
    the running worker's stores."""
    port = free_port()
    state = tmp_path / "dev-state"
    dev = start_dev("--port", str(port), "--state-dir", str(state))
    dev.await_log("waitline dev is running", timeout=90)
    banner = dev.log()
    exports = re.findall(r"^  (export WAITLINE_\w+=.*)$", banner, re.M)
    assert exports == [
        f"export WAITLINE_BOOTSTRAP_SERVERS=127.0.0.1:{port}",
        f"export WAITLINE_STATE_DIR={state}",
    ]
    assert f"state in {state} (kept)" in banner
    [inspect] = re.findall(r"^  (\.venv/bin/waitline inspect .*)$", banner, re.M)

    client = Client(
        Settings(bootstrap_servers=f"127.0.0.1:{port}", topics_file=REPO / "topics.yaml")
    )
    client.send_event("email.verified", uid, {"n": 1})
    resume = client.wait_for_event(
        f"{uid}/w",
        run_id=f"run-{uid}",
        name="email.verified",
        correlation_key=uid,
        timeout="5m",
        wait_timeout=90,
    )
    assert resume.outcome == "matched"  # the worker has its partitions

    if not (REPO / ".venv" / "bin" / "waitline").exists():  # a suite run from another venv
        inspect = inspect.replace(".venv/bin/waitline", f"{sys.executable} -m waitline", 1)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WAITLINE_")}
    shown = subprocess.run(
        ["bash", "-c", "\n".join([*exports, inspect])],
        env=clean,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1].split()[0] == "total", shown.stdout

    assert dev.stop(signal.SIGINT, timeout=120) == 0
    assert any(state.iterdir())  # a given state directory stays
