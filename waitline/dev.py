"""``waitline dev``: the embedded broker, the topics and a worker, until Ctrl-C or SIGTERM.

The embedded broker keeps its data in memory, so every ``dev`` run starts from empty topics;
the workers' RocksDB state goes to a fresh temporary directory for the same reason (state
whose offsets point past the end of recreated topics would be stale). That directory also
holds the broker's and the worker's logs, and is removed when ``dev`` exits, however it exits
(start-up failures and Ctrl-C during start-up included).

A worker that exits is started again after a back-off (``waitline.supervisor``), on the same
state directory, so it resumes from its stores and committed offsets; the dev stack stops
only when asked to, or when the broker itself is gone. Since the logs go with the directory,
a worker's death is reported with the last lines of its log.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from confluent_kafka.admin import AdminClient

from waitline.broker import EmbeddedBroker
from waitline.config import Settings
from waitline.supervisor import WorkerSupervisor
from waitline.topics import create_topics, load_topics
from waitline.worker import STOP_GRACE_S

__all__ = ["run_dev"]

_TEND_INTERVAL_S = 0.2  # how often the broker and the worker are looked at


def run_dev(port: int = 9092, state_dir: str | None = None, workers: int = 1) -> int:
    """Run the dev stack until SIGINT, SIGTERM or SIGHUP; return the exit code (0).

    Raises what start-up raises (``BrokerError``, ``TopicError``, ...), and ``BrokerError``
    if the broker exits while the stack runs; the temporary directory is removed either way.
    """
    stop = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stop.set()

    # From here on these only set ``stop``: start-up checks it between its steps. SIGHUP (the
    # terminal closed) too, or the temporary directory would stay behind.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    scratch = Path(tempfile.mkdtemp(prefix="waitline-dev-"))
    try:
        # Absolute: the banner's exports must work from any directory.
        state = Path(state_dir).resolve() if state_dir else scratch / "state"
        return _run(stop, scratch, state, port, workers)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(stop: threading.Event, scratch: Path, state: Path, port: int, workers: int) -> int:
    broker = EmbeddedBroker(port=port, log_path=scratch / "broker.log")
    supervisor: WorkerSupervisor | None = None
    try:
        print(f"starting the embedded broker (Tansu) on 127.0.0.1:{port} ...", flush=True)
        bootstrap = broker.start()
        if stop.is_set():
            return _stopping()
        settings = Settings(bootstrap_servers=bootstrap)
        topics = load_topics(settings.topics_file, settings.topic_prefix)
        for name, status in create_topics(
            AdminClient(settings.as_librdkafka_dict()), topics
        ).items():
            print(f"  topic {name}: {status}")
        if stop.is_set():
            return _stopping()
        if workers:
            env = {
                **os.environ,
                "WAITLINE_BOOTSTRAP_SERVERS": bootstrap,
                "WAITLINE_STATE_DIR": str(state),
                "WAITLINE_TOPICS_FILE": str(settings.topics_file),
                "WAITLINE_PROCESSES": str(workers),  # waitline worker --processes
            }
            supervisor = WorkerSupervisor(
                [sys.executable, "-m", "waitline", "worker"], env, scratch / "worker.log"
            )
            supervisor.start()
        _banner(bootstrap, scratch, state, settings, workers)
        while not stop.wait(_TEND_INTERVAL_S):
            broker.check_alive()  # its data is gone: stop, rather than restart workers
            if supervisor is not None:
                supervisor.tend()
        return _stopping()
    finally:
        if supervisor is not None:
            supervisor.stop(STOP_GRACE_S + 15)
        broker.stop()


def _stopping() -> int:
    print("\nstopping ...", flush=True)
    return 0


def _banner(bootstrap: str, scratch: Path, state: Path, settings: Settings, workers: int) -> None:
    exports = {"WAITLINE_BOOTSTRAP_SERVERS": bootstrap, "WAITLINE_STATE_DIR": str(state)}
    # What this environment set that the other terminals must share: the worker inherits it.
    if settings.topic_prefix:
        exports["WAITLINE_TOPIC_PREFIX"] = settings.topic_prefix
    if settings.group_id != f"{settings.topic_prefix}waitline":  # not the default
        exports["WAITLINE_GROUP_ID"] = settings.group_id
    lines = "\n".join(f"  export {name}={shlex.quote(value)}" for name, value in exports.items())
    kept = "removed on exit" if state.is_relative_to(scratch) else "kept"
    print(
        f"""
waitline dev is running: {workers} worker(s), logs in {scratch} (removed on exit),
state in {state} ({kept})

In another terminal:

{lines}

wait for an event (blocks until it arrives or times out):

  .venv/bin/waitline wait email.verified user-42 --timeout 5m

and send it from a third (with the same exports):

  .venv/bin/waitline send email.verified user-42 --data '{{"via": "link"}}'

Pending waits and buffered events in the worker's state:

  .venv/bin/waitline inspect summary

A worker that exits is started again. Ctrl-C stops everything.
""",
        flush=True,
    )
