"""``waitline dev``: the embedded broker, the topics and a worker, until Ctrl-C.

The embedded broker keeps its data in memory, so every ``dev`` run starts from empty topics;
the workers' RocksDB state goes to a fresh temporary directory for the same reason (state
whose offsets point past the end of recreated topics would be stale).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from confluent_kafka.admin import AdminClient

from waitline.broker import EmbeddedBroker
from waitline.config import Settings
from waitline.topics import create_topics, load_topics
from waitline.worker import STOP_GRACE_S

__all__ = ["run_dev"]


def run_dev(port: int = 9092, state_dir: str | None = None, workers: int = 1) -> int:
    stop = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    scratch = Path(tempfile.mkdtemp(prefix="waitline-dev-"))
    state = Path(state_dir) if state_dir else scratch / "state"
    broker = EmbeddedBroker(port=port, log_path=scratch / "broker.log")
    worker: subprocess.Popen[bytes] | None = None
    try:
        print(f"starting the embedded broker (Tansu) on 127.0.0.1:{port} ...", flush=True)
        bootstrap = broker.start()
        settings = Settings(bootstrap_servers=bootstrap)
        topics = load_topics(settings.topics_file, settings.topic_prefix)
        for name, status in create_topics(
            AdminClient(settings.as_librdkafka_dict()), topics
        ).items():
            print(f"  topic {name}: {status}")
        env = {
            **os.environ,
            "WAITLINE_BOOTSTRAP_SERVERS": bootstrap,
            "WAITLINE_STATE_DIR": str(state),
            "WAITLINE_TOPICS_FILE": str(settings.topics_file),
            "WAITLINE_PROCESSES": str(workers),  # waitline worker --processes
        }
        if workers:
            with open(scratch / "worker.log", "wb") as log:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "waitline", "worker"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        _banner(bootstrap, scratch, workers)
        while not stop.is_set():
            if worker is not None and worker.poll() is not None:
                print(f"the worker exited with code {worker.returncode}; see {scratch}", flush=True)
                stop.set()
            stop.wait(0.5)
        print("\nstopping ...", flush=True)
        return 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(STOP_GRACE_S + 15)
            except subprocess.TimeoutExpired:
                worker.kill()
        broker.stop()
        if state_dir is None:
            shutil.rmtree(scratch / "state", ignore_errors=True)


def _banner(bootstrap: str, scratch: Path, workers: int) -> None:
    print(
        f"""
waitline dev is running: {workers} worker(s), logs in {scratch}

  export WAITLINE_BOOTSTRAP_SERVERS={bootstrap}

In another terminal, wait for an event (blocks until it arrives or times out):

  .venv/bin/waitline wait email.verified user-42 --timeout 5m

and send it from a third:

  .venv/bin/waitline send email.verified user-42 --data '{{"via": "link"}}'

Ctrl-C stops everything.
""",
        flush=True,
    )
