"""Start a processor from settings: check the broker and topics, then run the loop."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from confluent_kafka.admin import AdminClient

from processors.correlation import CoreSettings, Target
from processors.runtime import Guarantee, RuntimeConfig, Worker
from processors.store import older_layouts
from waitline.broker import wait_for_broker
from waitline.config import Settings
from waitline.errors import ConfigError
from waitline.topics import Topics, check_copartitioned, load_topics

__all__ = ["build_worker", "check_state_layout", "run_worker"]

log = logging.getLogger("waitline.worker")


def runtime_config(settings: Settings, topics: Topics, partitions: int) -> RuntimeConfig:
    return RuntimeConfig(
        client=settings.as_librdkafka_dict(),
        group_id=settings.group_id,
        state_dir=settings.state_dir,
        topics={
            Target.EVENTS: topics.events.name,
            Target.WAIT_COMMANDS: topics.wait_commands.name,
            Target.RESUMES: topics.resumes.name,
            Target.DEAD_LETTERS: topics.dead_letters.name,
            Target.CHANGELOG: topics.changelog.name,
        },
        partitions=partitions,
        core=CoreSettings(
            event_ttl_ms=settings.ms("event_ttl"),
            dedup_window_ms=settings.ms("dedup_window"),
            tombstone_retention_ms=settings.ms("tombstone_retention"),
            max_record_bytes=settings.max_record_bytes,
        ),
        guarantee=Guarantee(settings.guarantee),
        transactional_id=settings.transactional_id,
        batch_size=settings.batch_size,
        timer_batch=settings.timer_batch,
        purge_interval_ms=settings.ms("purge_interval"),
    )


def check_state_layout(settings: Settings) -> None:
    """Refuse local stores written in another state layout (processors.state) with one line."""
    old = older_layouts(settings.state_dir / settings.group_id)
    if old:
        raise ConfigError(
            f"{old[0]} holds state in an older layout that this version cannot read; "
            "rebuild it under a new group id or state dir (docs/operations.md, Upgrading)"
        )


def build_worker(settings: Settings) -> Worker:
    """Check the state, that Kafka answers and the topics are co-partitioned; return an
    unstarted worker."""
    check_state_layout(settings)
    client = settings.as_librdkafka_dict()
    wait_for_broker(settings.bootstrap_servers, timeout=15.0, extra_config=settings.kafka)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    partitions = check_copartitioned(AdminClient(client), topics)
    return Worker(runtime_config(settings, topics, partitions))


def run_worker(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run a worker until SIGINT/SIGTERM (or ``stop``), then shut down cleanly."""
    worker = build_worker(settings)
    stop = stop or threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    if settings.metrics_port is not None:
        from waitline.metrics import serve_metrics

        serve_metrics(settings.metrics_port, worker)
    worker.run(stop)
