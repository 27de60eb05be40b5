"""A run-loop ``Worker`` without Kafka: configured for topics named ``t.*`` and 8 partitions,
with one open RocksDB store; the tests set the consumer and producer fakes they need."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from processors.correlation import Target
from processors.runtime import RuntimeConfig, Worker
from processors.store import PartitionStore

TOPICS = {
    Target.EVENTS: "t.events",
    Target.WAIT_COMMANDS: "t.wait-commands",
    Target.RESUMES: "t.resumes",
    Target.DEAD_LETTERS: "t.dead-letters",
    Target.CHANGELOG: "t.changelog",
}


@contextmanager
def worker_with_store(tmp_path: Path, partition: int) -> Iterator[Worker]:
    """A worker owning ``partition``'s store (under ``tmp_path``), closed afterwards."""
    config = RuntimeConfig(client={}, group_id="g", state_dir=tmp_path, topics=TOPICS, partitions=8)
    worker = Worker(config)
    store = PartitionStore(tmp_path / "p", partition)
    store.open()
    worker.stores[partition] = store
    try:
        yield worker
    finally:
        store.close()
