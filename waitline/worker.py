"""Start a processor from settings: check the broker and topics, then run the loop.

``run_workers`` runs ``settings.processes`` of them as child processes of one command: each is
an ordinary member of the group (its own consumer, producer and partitions) and they share the
state directory, as workers on one host always may (stores are per partition, and the eager
rebalance closes a store before another member opens it). A worker is one Python thread of
work, so this is how one host's cores are put to use (docs/operations.md, "Processes").
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import multiprocessing.connection
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from confluent_kafka.admin import AdminClient

from waitline.broker import wait_for_broker
from waitline.config import Settings
from waitline.errors import ConfigError, WaitlineError
from waitline.logs import KAFKA_LOGGER, configure_logging
from waitline.processors.correlation import CoreSettings, Target
from waitline.processors.restore import RestoreError
from waitline.processors.runtime import Guarantee, RuntimeConfig, Worker, WorkerError
from waitline.processors.store import older_layouts
from waitline.topics import (
    Topics,
    check_broker_record_limits,
    check_copartitioned,
    check_record_limits,
    load_topics,
)

__all__ = [
    "build_worker",
    "check_state_layout",
    "child_settings",
    "run_worker",
    "run_workers",
    "settle_heap",
]

log = logging.getLogger("waitline.worker")


def runtime_config(settings: Settings, topics: Topics, partitions: int) -> RuntimeConfig:
    client = settings.as_librdkafka_dict()
    if settings.log_format == "json":
        # librdkafka writes its own lines to stderr unless given a logger: through Python's
        # logging they come out as JSON like every other line.
        client["logger"] = logging.getLogger(KAFKA_LOGGER)
    return RuntimeConfig(
        client=client,
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
            max_clock_skew_ms=settings.ms("max_clock_skew"),
            max_pair_events=settings.max_pair_events,
            max_registration_scan=settings.max_registration_scan,
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
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    check_record_limits(topics, settings.max_record_bytes)
    client = settings.as_librdkafka_dict()  # every client of the worker, the probe too
    wait_for_broker(client, timeout=15.0)
    admin = AdminClient(client)
    partitions = check_copartitioned(admin, topics)
    check_broker_record_limits(admin, topics, settings.max_record_bytes)
    return Worker(runtime_config(settings, topics, partitions))


def run_worker(
    settings: Settings, stop: threading.Event | None = None, *, own_process: bool = False
) -> None:
    """Run a worker until SIGINT/SIGTERM (or ``stop``), then shut down cleanly.

    ``own_process``: the process is there to run this worker (the ``waitline worker`` command,
    a child of ``run_workers``), so its heap is settled first (``settle_heap``); an application
    calling this keeps its own garbage collection as it was."""
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

        serve_metrics(settings.metrics_port, worker, settings.metrics_host)
    if own_process:
        settle_heap()
    worker.run(stop)


def settle_heap() -> None:
    """Move what the process has built so far out of the cyclic garbage collector's way.

    A worker's modules, classes and settings (~53,000 objects) live as long as its process;
    left in the collector's oldest generation, every full collection walks them again: a
    27-51 ms stall of the loop, two or three times in 15 s under load. Frozen (``gc.freeze``),
    they are not walked, and a full collection took 0.4-1.3 ms (docs/benchmarks.md, "Timeout
    lateness"). Only in a process that is this worker's own (``run_worker(own_process=True)``),
    since frozen objects are never collected.
    """
    gc.collect()
    gc.freeze()


# -- several worker processes under one command ------------------------------------------------

# How long the children get to finish their batch and leave the group after a SIGTERM.
STOP_GRACE_S = 60.0


def child_settings(settings: Settings, index: int) -> Settings:
    """The settings of worker process ``index`` (0-based): one process each, and whatever
    must differ between members told apart (the metrics port). The transactional id prefix is
    shared: exactly-once ids belong to partitions, not to processes."""
    update: dict[str, object] = {"processes": 1}
    if settings.metrics_port is not None:
        update["metrics_port"] = settings.metrics_port + index
    return settings.model_copy(update=update)


def run_workers(
    settings: Settings, stop: threading.Event | None = None, *, own_process: bool = False
) -> None:
    """Run ``settings.processes`` workers as child processes until SIGINT/SIGTERM (or
    ``stop``); with one, run it in this process (``own_process``: as ``run_worker``'s).

    If a child exits on its own, the others are stopped too and ``WaitlineError`` says which
    and how: the command fails as a whole, for its supervisor (systemd, Kubernetes) to restart,
    rather than run on with fewer processes than it was given. Children that outlive this
    process (a SIGKILL) stop themselves, as after a SIGTERM.
    """
    if settings.processes == 1:
        run_worker(settings, stop, own_process=own_process)
        return
    check_state_layout(settings)  # the mistakes the children would all make, said once
    wait_for_broker(settings.as_librdkafka_dict(), timeout=15.0)
    stop = stop or threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping the worker processes", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    context = multiprocessing.get_context("spawn")  # no librdkafka threads forked mid-state
    children = [
        context.Process(
            target=_child,
            args=(child_settings(settings, index), index, logging.getLogger().level),
            name=f"worker-{index}",
        )
        for index in range(settings.processes)
    ]
    failed: str | None = None
    try:
        for child in children:
            child.start()
            log.info("started worker process %s (pid %s)", child.name, child.pid)
        sentinels = [child.sentinel for child in children]
        while not stop.is_set():
            ready = multiprocessing.connection.wait(sentinels, timeout=0.2)
            if ready:
                # A sentinel is ready once the child's descriptors are closed, which the kernel
                # does before the process is a zombie: is_alive() can still say True then.
                ended = next(child for child in children if child.sentinel in ready)
                ended.join(10.0)
                failed = (
                    f"worker process {ended.name} (pid {ended.pid}) "
                    f"exited with code {ended.exitcode}"
                )
                log.error("%s; stopping the others", failed)
                break
    finally:
        _stop_children(children)
    if failed is not None:
        raise WaitlineError(failed)


def _stop_children(children: Sequence[multiprocessing.process.BaseProcess]) -> None:
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: finish the batch, leave the group
    for child in children:
        child.join(STOP_GRACE_S)
        if child.is_alive():
            log.error(
                "worker process %s did not stop in %.0fs; killing it", child.name, STOP_GRACE_S
            )
            child.kill()
            child.join()


def _child(settings: Settings, index: int, level: int) -> None:
    """A worker process's entry point: ``run_worker``, stopping when the parent is gone."""
    configure_logging(level, settings.log_format, worker=index)
    stop = threading.Event()
    parent = multiprocessing.parent_process()
    if parent is not None:

        def _orphaned() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            log.warning("the parent process is gone; stopping")
            stop.set()

        threading.Thread(target=_orphaned, name="parent-watch", daemon=True).start()
    try:
        run_worker(settings, stop, own_process=True)
    except (WorkerError, RestoreError, WaitlineError) as exc:
        print(f"waitline: error: worker-{index} stopped: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
