"""Keeping ``waitline dev``'s worker running: start it, start it again when it exits, stop it.

``Backoff`` is the restart policy, a pure function of the last pause and how long the worker
stayed up; ``WorkerSupervisor`` follows it for one worker command. Every run of the worker
appends its output to one log file, behind a header line, so the file reads as the history of
its runs; when a run ends, the supervisor logs why (exit code or signal) and the run's last
lines, so that what a crash said is on screen even after the file is gone.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from waitline.broker import die_with_parent

__all__ = ["Backoff", "WorkerSupervisor", "exit_reason"]

log = logging.getLogger("waitline.dev")

_LOG_TAIL_LINES = 10
_LOG_TAIL_BYTES = 64 * 1024  # enough for the last lines, however long the run


@dataclass(frozen=True)
class Backoff:
    """How long to pause before starting again a worker that exited.

    The first pause is ``first_s``; each exit that follows a short run doubles it, up to
    ``max_s``; a run of ``reset_after_s`` or more counts as healthy and starts the count over.
    A worker that crashes as it starts is so started at most every ``max_s`` seconds.
    """

    first_s: float = 1.0
    max_s: float = 30.0
    reset_after_s: float = 60.0

    def next_pause(self, last_pause_s: float | None, uptime_s: float) -> float:
        """The pause after a run of ``uptime_s`` seconds; ``last_pause_s`` is the pause that
        came before that run (``None`` if it was the first)."""
        if last_pause_s is None or uptime_s >= self.reset_after_s:
            return self.first_s
        return min(last_pause_s * 2, self.max_s)


def exit_reason(returncode: int) -> str:
    """``"exited with code 1"``, or ``"killed by SIGKILL"`` for Popen's negative codes."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


class Process(Protocol):
    """What the supervisor needs of a process: ``subprocess.Popen`` has it."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class WorkerSupervisor:
    """Runs ``command`` with its output appended to ``log_path``, and starts it again after
    the ``backoff`` pause whenever it exits, until ``stop``.

    No I/O until ``start``. The owner's loop calls ``tend`` every fraction of a second: it
    notices an exit (and logs it) or starts the worker again once its pause is over. The
    worker runs in its own session, so a Ctrl-C in the terminal reaches only the owner, which
    stops it with ``stop``; on Linux it gets a SIGTERM should the owner die without doing so.
    ``clock`` and ``spawn`` are there for tests.
    """

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        spawn: Callable[[IO[bytes]], Process] | None = None,
    ) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.log_path = log_path
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._spawn = spawn or self._popen
        self._proc: Process | None = None
        self._runs = 0
        self._started_at = 0.0
        self._log_offset = 0  # where the current run's output begins in log_path
        self._pause: float | None = None  # the pause before the current (or next) run
        self._restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        """The running worker's process id; ``None`` while it is paused or stopped."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the worker (its first run, or the next one)."""
        self._runs += 1
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self.log_path.open("ab") as out:
            out.write(f"=== waitline dev: worker run {self._runs}, {stamp} ===\n".encode())
            out.flush()
            self._log_offset = out.tell()
            self._proc = self._spawn(out)
        self._started_at = self._clock()
        self._restart_at = None
        log.info("worker started (pid %d)", self._proc.pid)

    def tend(self) -> None:
        """Notice that the worker exited and schedule its next start, or start it if due."""
        now = self._clock()
        if self._proc is None:
            if self._restart_at is not None and now >= self._restart_at:
                self.start()
            return
        returncode = self._proc.poll()
        if returncode is None:
            return
        pid, self._proc = self._proc.pid, None
        uptime = now - self._started_at
        self._pause = self.backoff.next_pause(self._pause, uptime)
        self._restart_at = now + self._pause
        log.warning(
            "worker (pid %d) %s after %.1fs; starting it again in %gs%s",
            pid,
            exit_reason(returncode),
            uptime,
            self._pause,
            self._run_tail(),
        )

    def stop(self, grace_s: float) -> None:
        """SIGTERM the worker and wait ``grace_s`` seconds for it, then SIGKILL. Idempotent."""
        proc, self._proc = self._proc, None
        self._restart_at = None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            log.error("the worker (pid %d) did not stop in %gs; killing it", proc.pid, grace_s)
            proc.kill()
            proc.wait()

    def _run_tail(self) -> str:
        """The last lines the current run wrote to the log, ready to follow a message."""
        try:
            with self.log_path.open("rb") as out:
                end = out.seek(0, 2)
                out.seek(max(self._log_offset, end - _LOG_TAIL_BYTES))
                text = out.read().decode(errors="replace")
        except OSError:
            return ""
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            return f"; it wrote nothing to {self.log_path}"
        tail = "\n".join(f"  | {line}" for line in lines[-_LOG_TAIL_LINES:])
        return f"; the end of its log {self.log_path}:\n{tail}"

    def _popen(self, out: IO[bytes]) -> Process:
        return subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
