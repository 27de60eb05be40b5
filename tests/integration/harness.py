"""The integration harness: isolated topics, real worker processes, readers of the outputs.

Every stack gets its own topic prefix, consumer group and state directory, so tests never see
each other's records. Waiting is always on a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from waitline.client import Client
from waitline.config import Settings
from waitline.schemas.models import ResumeCommand
from waitline.topics import Topics, create_topics, load_topics

REPO = Path(__file__).resolve().parents[2]


class TopicReader:
    """Reads whole topics from the beginning without a consumer group (no join delay)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.topic = topic
        self.records: list[Any] = []
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )

    def drain(self, timeout: float = 0.2) -> None:
        """Read what has arrived; wait up to ``timeout`` only when nothing has."""
        while True:
            batch = self._consumer.consume(1000, timeout)
            self.records.extend(msg for msg in batch if msg.error() is None)
            if len(batch) < 1000:
                return
            timeout = 0

    def wait_for(
        self, predicate: Callable[[list[Any]], bool], timeout: float = 30.0, what: str = ""
    ) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if predicate(self.records):
                return self.records
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what or 'condition'} on "
                    f"{self.topic}; have {len(self.records)} records"
                )

    def close(self) -> None:
        self._consumer.close()


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def await_log(self, pattern: str, count: int = 1, timeout: float = 30.0) -> list[str]:
        """The first ``count`` matches of the regex ``pattern`` in the log, once there are
        that many (its groups, if it has one)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = self.alive()  # before the read: a process found dead has written it all
            found = re.findall(pattern, self.log())
            if len(found) >= count:
                return found[:count]
            if time.monotonic() > deadline or not alive:
                raise AssertionError(
                    f"{count} lines like {pattern!r} not in the worker's log "
                    f"(within {timeout}s):\n{self.log()}"
                )
            time.sleep(0.05)  # polling the log file, not a settle delay

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker did not stop within {timeout}s:\n{self.log()}") from None


@dataclass
class Stack:
    """One isolated waitline deployment on the shared test broker."""

    bootstrap: str
    prefix: str
    state_dir: Path
    tmp: Path
    settings: Settings
    topics: Topics
    workers: list[WorkerProcess] = field(default_factory=list)
    _readers: dict[str, TopicReader] = field(default_factory=dict)
    _client: Client | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "WAITLINE_BOOTSTRAP_SERVERS": self.bootstrap,
            "WAITLINE_TOPIC_PREFIX": self.prefix,
            "WAITLINE_TOPICS_FILE": str(REPO / "topics.yaml"),
            "WAITLINE_GROUP_ID": f"{self.prefix}workers",
            "WAITLINE_STATE_DIR": str(self.state_dir),
            "WAITLINE_PURGE_INTERVAL": "1s",
        }

    def start_worker(self, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        index = len(self.workers)
        log_path = self.tmp / f"worker-{index}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "waitline", "worker"],
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        worker = WorkerProcess(proc, log_path)
        self.workers.append(worker)
        return worker

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.settings, topics=self.topics)
        return self._client

    def reader(self, role: str) -> TopicReader:
        if role not in self._readers:
            spec = self.topics.by_role(role)  # type: ignore[arg-type]
            self._readers[role] = TopicReader(self.bootstrap, spec.name, spec.partitions)
        return self._readers[role]

    def resumes_for(self, wait_id: str) -> list[ResumeCommand]:
        reader = self.reader("resumes")
        reader.drain(timeout=0)
        out = []
        for msg in reader.records:
            resume = ResumeCommand.model_validate_json(msg.value())
            if resume.wait_id == wait_id:
                out.append(resume)
        return out

    def await_resume(self, wait_id: str, timeout: float = 30.0) -> ResumeCommand:
        self.reader("resumes").wait_for(
            lambda records: any(_wait_id(m) == wait_id for m in records),
            timeout,
            f"the resume of {wait_id}",
        )
        return self.resumes_for(wait_id)[0]

    def await_resumes(self, wait_ids: set[str], timeout: float = 60.0) -> dict[str, ResumeCommand]:
        self.reader("resumes").wait_for(
            lambda records: wait_ids <= {_wait_id(m) for m in records},
            timeout,
            f"{len(wait_ids)} resumes",
        )
        found: dict[str, ResumeCommand] = {}
        for msg in self.reader("resumes").records:
            resume = ResumeCommand.model_validate_json(msg.value())
            if resume.wait_id in wait_ids:
                found.setdefault(resume.wait_id, resume)
        return found

    def await_dead_letter(self, predicate: Callable[[Any], bool], timeout: float = 30.0) -> Any:
        reader = self.reader("dead-letters")
        reader.wait_for(
            lambda records: any(predicate(m) for m in records), timeout, "a dead letter"
        )
        return next(m for m in reader.records if predicate(m))

    def produce_raw(
        self,
        role: str,
        key: bytes | None,
        value: bytes,
        *,
        timestamp: int | None = None,
        partition: int | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
    ) -> None:
        """Produce bytes as any producer could (murmur2 partitioner unless told a partition)."""
        producer = self.raw_producer()
        kwargs: dict[str, Any] = {}
        if timestamp is not None:
            kwargs["timestamp"] = timestamp
        if partition is not None:
            kwargs["partition"] = partition
        if headers:
            kwargs["headers"] = headers
        producer.produce(self.topics.by_role(role).name, value, key, **kwargs)  # type: ignore[arg-type]
        assert producer.flush(10) == 0, "broker did not acknowledge a test record"

    def raw_producer(self) -> Producer:
        """A producer as any producer could be (murmur2 partitioner)."""
        return Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "partitioner": "murmur2_random",
                "message.max.bytes": 4_000_000,  # records past the worker's limit, too
            }
        )

    def close(self) -> None:
        for worker in self.workers:
            if worker.alive():
                worker.stop(signal.SIGKILL)
        for reader in self._readers.values():
            reader.close()
        if self._client is not None:
            self._client.flush(10)


def _wait_id(msg: Any) -> str | None:
    try:
        value = json.loads(msg.value())
    except ValueError:
        return None
    wait_id = value.get("waitId") if isinstance(value, dict) else None
    return wait_id if isinstance(wait_id, str) else None


def make_stack(bootstrap: str, tmp: Path) -> Stack:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    settings = Settings(
        bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        topics_file=REPO / "topics.yaml",
        state_dir=tmp / "state",
    )
    topics = load_topics(settings.topics_file, prefix)
    create_topics(AdminClient({"bootstrap.servers": bootstrap}), topics)
    return Stack(bootstrap, prefix, tmp / "state", tmp, settings, topics)
