"""Replay: rebuild state from the input topics into a new group, state directory and topics.

A replay named by a prefix ``P`` runs the real worker (``processors.runtime.Worker``) in this
process, on the live ``events`` and ``wait-commands`` topics, as consumer group ``P<group>``,
with its stores under ``<state dir>/P<group>`` and its own ``changelog``, ``resumes`` and
``dead-letters`` topics (``P`` inserted after ``WAITLINE_TOPIC_PREFIX``: ``P changelog``), until
its group's committed offsets reach the end every input partition had when the replay started.
Running it again continues from where it stopped (a catch-up); ``discard`` removes it.

The replay decides what the log says and writes nothing to the live topics: its core
(``waitline.replaycore``) fires no timers (the live timer records time waits out; a wait whose
deadline passed without one stays pending, for the first worker on the replay's state to fire),
leaves misrouted records to the live worker's forwarded copies, and purges by record time.

A replay from a point other than the beginning (offsets per partition, or a time) starts from an
empty state: waits registered before that point are unknown to it (their events, cancels and
timer records find nothing), and so are events buffered before it. The starting offsets are
written into the replay's stores and changelog before it runs, and committed to its group.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from waitline.broker import wait_for_broker
from waitline.config import Settings
from waitline.errors import BrokerError, WaitlineError
from waitline.logread import (
    committed_offsets,
    end_offsets,
    offsets_at,
    timestamps_at,
)
from waitline.processors.limits import producer_max_bytes
from waitline.processors.runtime import Worker
from waitline.processors.store import PartitionStore, partition_stores
from waitline.progress import Bar
from waitline.replaycore import ReplayCorrelator
from waitline.topics import (
    Topics,
    check_broker_record_limits,
    check_copartitioned,
    check_record_limits,
    create_topics,
    load_topics,
)
from waitline.worker import check_state_layout, runtime_config

__all__ = [
    "ReplayError",
    "ReplayPlan",
    "ReplayResult",
    "ReplayTarget",
    "StartPoint",
    "check_prefix",
    "discard",
    "plan_replay",
    "read_manifest",
    "replay_target",
    "run_replay",
]

INPUT_ROLES = ("events", "wait-commands")
_PREFIX = re.compile(r"[A-Za-z0-9._-]+")
MANIFEST = "replay.json"
# How often the replay asks its group how far it got.
_CHECK_INTERVAL_S = 1.0
# How often the replay's worker purges expired state (by record time: ReplayCorrelator.purge).
_PURGE_INTERVAL_MS = 1_000


class ReplayError(WaitlineError):
    """A replay that cannot run as asked; the message says what to change."""


# -- naming ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayTarget:
    """Where a replay lives: its settings (group, state dir) and topics."""

    prefix: str
    live_settings: Settings
    live: Topics
    settings: Settings
    topics: Topics

    @property
    def group_id(self) -> str:
        return self.settings.group_id

    @property
    def state_path(self) -> Path:
        return self.settings.state_dir / self.settings.group_id

    def own_topics(self) -> list[str]:
        return [self.topics.changelog.name, self.topics.resumes.name, self.topics.dead_letters.name]


def check_prefix(prefix: str) -> None:
    """A replay's prefix goes into topic and group names: no empty one, nothing odd."""
    if not _PREFIX.fullmatch(prefix):
        raise ReplayError(
            f"--prefix {prefix!r}: use letters, digits, '.', '_' and '-' (e.g. replay-1.)"
        )


def replay_target(settings: Settings, prefix: str, state_dir: Path | None = None) -> ReplayTarget:
    """The replay ``prefix`` of the deployment ``settings`` describe."""
    check_prefix(prefix)
    live = load_topics(settings.topics_file, settings.topic_prefix)

    def renamed(name: str) -> str:
        return settings.topic_prefix + prefix + name.removeprefix(settings.topic_prefix)

    topics = live.model_copy(
        update={
            "changelog": live.changelog.model_copy(update={"name": renamed(live.changelog.name)}),
            "resumes": live.resumes.model_copy(update={"name": renamed(live.resumes.name)}),
            "dead_letters": live.dead_letters.model_copy(
                update={"name": renamed(live.dead_letters.name)}
            ),
        }
    )
    replay_settings = settings.model_copy(
        update={
            "group_id": prefix + settings.group_id,
            "state_dir": state_dir or settings.state_dir,
            # Never the live prefix: the replay's producers would fence the live ones.
            "transactional_id": None,
            "processes": 1,
            "metrics_port": None,
        }
    )
    return ReplayTarget(prefix, settings, live, replay_settings, topics)


# -- planning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartPoint:
    """Where a replay starts: the beginning (both None), offsets per input partition (roles
    and partitions not named start at the beginning), or a time (epoch ms)."""

    offsets: dict[str, dict[int, int]] | None = None
    time: int | None = None

    @property
    def beginning(self) -> bool:
        return self.offsets is None and self.time is None


@dataclass
class ReplayPlan:
    target: ReplayTarget
    partitions: int
    starts: dict[str, dict[int, int]]
    ends: dict[str, dict[int, int]]
    ends_read_at: int  # wall clock (epoch ms) when the ends were read
    continuing: bool = False
    start_time: int | None = None  # from a point: the earliest record time replayed
    methods: dict[str, dict[int, str]] = field(default_factory=dict)  # time start: per partition

    @property
    def seeded(self) -> bool:
        """Whether the replay starts past the beginning somewhere (and so from empty state)."""
        return not self.continuing and any(o > 0 for s in self.starts.values() for o in s.values())

    @property
    def total(self) -> int:
        return sum(
            max(self.ends[role][p] - self.starts[role].get(p, 0), 0)
            for role in INPUT_ROLES
            for p in range(self.partitions)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.target.prefix,
            "group": self.target.group_id,
            "stateDir": str(self.target.state_path),
            "topics": {
                "changelog": self.target.topics.changelog.name,
                "resumes": self.target.topics.resumes.name,
                "deadLetters": self.target.topics.dead_letters.name,
            },
            "continuing": self.continuing,
            "startTime": self.start_time,
            "starts": self.starts,
            "ends": self.ends,
            "records": self.total,
        }


def _input_topics(target: ReplayTarget) -> dict[str, str]:
    return {"events": target.live.events.name, "wait-commands": target.live.wait_commands.name}


def _has_state(target: ReplayTarget) -> bool:
    if partition_stores(target.state_path):
        return True
    client = target.settings.as_librdkafka_dict()
    name = target.topics.changelog.name
    # All topics, not the one: naming a missing topic may make the broker create it.
    meta = AdminClient(client).list_topics(timeout=30).topics.get(name)
    if meta is None or meta.error is not None:
        return False
    ends = end_offsets(client, name, sorted(meta.partitions))
    return any(ends.values())


def plan_replay(target: ReplayTarget, start: StartPoint, *, bar: Bar | None = None) -> ReplayPlan:
    """Check the deployment and the replay's state; find where each input partition starts and
    ends (its end as of now)."""
    settings = target.settings
    client = settings.as_librdkafka_dict()
    check_record_limits(target.topics, settings.max_record_bytes)
    check_state_layout(settings)
    wait_for_broker(client, timeout=15.0)
    partitions = check_copartitioned(AdminClient(client), target.live)
    continuing = _has_state(target)
    if continuing and not start.beginning:
        raise ReplayError(
            f"replay {target.prefix!r} has state already (group {target.group_id}): run it "
            "without a start point to continue it, or `waitline replay discard --prefix "
            f"{target.prefix}` first"
        )
    numbers = list(range(partitions))
    read_at = int(time.time() * 1000)
    ends = {
        role: end_offsets(client, topic, numbers, bar=bar)
        for role, topic in _input_topics(target).items()
    }
    starts: dict[str, dict[int, int]] = {role: dict.fromkeys(numbers, 0) for role in INPUT_ROLES}
    plan = ReplayPlan(target, partitions, starts, ends, read_at, continuing)
    if continuing:
        for role, topic in _input_topics(target).items():
            found = committed_offsets(client, target.group_id, topic, numbers)
            starts[role].update({p: o for p, o in found.items() if o is not None})
    elif start.offsets is not None:
        for role, by_partition in start.offsets.items():
            if role not in INPUT_ROLES:
                raise ReplayError(f"{role!r} is no input topic: use events or wait-commands")
            for p, offset in by_partition.items():
                if p not in ends[role]:
                    raise ReplayError(f"{role} has no partition {p} (it has {partitions})")
                if not 0 <= offset <= ends[role][p]:
                    raise ReplayError(
                        f"{role}/{p}={offset} is past the partition's end ({ends[role][p]})"
                    )
                starts[role][p] = offset
        plan.start_time = _earliest_time(client, target, starts, ends)
    elif start.time is not None:
        for role, topic in _input_topics(target).items():
            at = offsets_at(client, topic, ends[role], start.time, bar=bar)
            starts[role] = at.offsets
            plan.methods[role] = at.method
        plan.start_time = start.time
    return plan


def _earliest_time(
    client: dict[str, Any],
    target: ReplayTarget,
    starts: dict[str, dict[int, int]],
    ends: dict[str, dict[int, int]],
) -> int | None:
    """The earliest record time at the starting offsets past the beginning."""
    times: list[int] = []
    for role, topic in _input_topics(target).items():
        inside = {p: o for p, o in starts[role].items() if 0 < o < ends[role][p]}
        times.extend(timestamps_at(client, topic, inside).values())
    return min(times) if times else None


# -- running -----------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    records: int
    seconds: float
    reached: dict[str, dict[int, int | None]]
    outcomes: dict[str, int]
    dead_letters: int
    resumes_reemitted: int
    skipped_misrouted: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "reached": self.reached,
            "outcomes": self.outcomes,
            "deadLetters": self.dead_letters,
            "resumesReemitted": self.resumes_reemitted,
            "skippedMisrouted": self.skipped_misrouted,
        }


def run_replay(plan: ReplayPlan, *, bar: Bar | None = None) -> ReplayResult:
    """Create the replay's topics, seed its start, and run its worker until its group has
    committed every input partition's end as of the plan."""
    target = plan.target
    settings = target.settings
    client = settings.as_librdkafka_dict()
    admin = AdminClient(client)
    create_topics(admin, target.topics)
    check_copartitioned(admin, target.topics)
    check_broker_record_limits(admin, target.topics, settings.max_record_bytes)
    if plan.seeded:
        _seed(plan)
    _write_manifest(plan)

    config = runtime_config(settings, target.topics, plan.partitions)
    real = config.core
    limit = producer_max_bytes(real.max_record_bytes)
    config = dataclasses.replace(
        config,
        # Every record reaches the core (module docstring); the producers keep their real limit.
        core=dataclasses.replace(real, max_record_bytes=0),
        client={
            **config.client,
            "message.max.bytes": max(int(config.client.get("message.max.bytes", 0)), limit),
        },
        purge_interval_ms=_PURGE_INTERVAL_MS,
    )
    core = ReplayCorrelator(real, plan.partitions)
    worker = Worker(config, core)
    stop = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    total = plan.total
    started = time.monotonic()
    if total == 0:  # caught up: no group join to interrupt (see below)
        return ReplayResult(0, 0.0, _reached(client, target, plan.partitions), {}, 0, 0, 0)
    # Stopped only once it has its partitions: a member that leaves while its group is being
    # formed can leave the embedded broker's group stuck (docs/operations.md, "Processes").
    assigned = threading.Event()
    replaying = f"replaying into {target.group_id}"

    def on_assigned(_partitions: list[int]) -> None:
        assigned.set()
        if bar is not None:
            bar.update(description=replaying)

    worker.on_assigned = on_assigned
    if bar is not None:
        bar.update(total=total, completed=0, description=f"joining group {target.group_id}")
    thread = threading.Thread(target=work, name="replay-worker", daemon=True)
    thread.start()
    reached: dict[str, dict[int, int | None]] = {}
    try:
        next_check = 0.0
        while True:
            thread.join(0.25)
            if not thread.is_alive():
                why = failure[0] if failure else "it stopped"
                raise WaitlineError(f"the replay's worker stopped: {why}")
            if bar is not None:
                bar.update(completed=min(worker.processed, total))
            if not assigned.is_set() or time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + _CHECK_INTERVAL_S
            reached = _reached(client, target, plan.partitions)
            if _done(plan, reached):
                break
    finally:
        stop.set()
        thread.join()
    if failure:
        raise WaitlineError(f"the replay's worker stopped: {failure[0]}")
    counters = core.counters
    return ReplayResult(
        records=worker.processed,
        seconds=time.monotonic() - started,
        reached=reached,
        outcomes=dict(counters.outcomes),
        dead_letters=counters.dead_letters,
        resumes_reemitted=counters.resumes_reemitted,
        skipped_misrouted=core.skipped_misrouted,
    )


def _reached(
    client: dict[str, Any], target: ReplayTarget, partitions: int
) -> dict[str, dict[int, int | None]]:
    numbers = list(range(partitions))
    return {
        role: committed_offsets(client, target.group_id, topic, numbers)
        for role, topic in _input_topics(target).items()
    }


def _done(plan: ReplayPlan, reached: dict[str, dict[int, int | None]]) -> bool:
    for role in INPUT_ROLES:
        for p in range(plan.partitions):
            end, start = plan.ends[role][p], plan.starts[role].get(p, 0)
            if end <= start:
                continue  # nothing to read: its group offset may never be written
            committed = reached.get(role, {}).get(p)
            if committed is None or committed < end:
                return False
    return True


def _seed(plan: ReplayPlan) -> None:
    """Write each partition's starting offsets into the replay's store and changelog (a batch
    with no changes, closed by its offsets), and commit them to the replay's group."""
    target = plan.target
    client = target.settings.as_librdkafka_dict()
    changelog = target.topics.changelog.name
    producer = Producer({**client, "enable.idempotence": True})
    positions: dict[int, int] = {}
    errors: list[str] = []

    def delivered(error: KafkaError | None, msg: Message) -> None:
        if error is not None:
            errors.append(error.str())
        else:
            positions[msg.partition() or 0] = (msg.offset() or 0) + 1

    stores = []
    try:
        for p in range(plan.partitions):
            store = PartitionStore(target.state_path / f"partition-{p}", p)
            store.open()
            stores.append(store)
            store.seal({role: plan.starts[role][p] for role in INPUT_ROLES})
            key, value = store.closing_record()
            producer.produce(changelog, value, key, p, on_delivery=delivered)
        if producer.flush(30) > 0 or errors:
            raise BrokerError(f"the replay's starting offsets were not written: {errors[:1]}")
        for store in stores:
            store.commit(changelog_position=positions[store.partition])
    finally:
        for store in stores:
            store.close()
    consumer = Consumer({**client, "group.id": target.group_id, "enable.auto.commit": False})
    try:
        consumer.commit(
            offsets=[
                TopicPartition(topic, p, plan.starts[role][p])
                for role, topic in _input_topics(target).items()
                for p in range(plan.partitions)
            ],
            asynchronous=False,
        )
    except KafkaException as exc:
        raise BrokerError(f"cannot commit the replay's starting offsets: {exc}") from None
    finally:
        consumer.close()


def _write_manifest(plan: ReplayPlan) -> None:
    """What ``compare`` needs to know of the replay: where it started, when its ends were read."""
    path = plan.target.state_path / MANIFEST
    previous = read_manifest(plan.target)
    manifest = {
        "prefix": plan.target.prefix,
        "startTime": previous.get("startTime") if plan.continuing else plan.start_time,
        "starts": previous.get("starts") if plan.continuing else plan.starts,
        "endsReadAt": plan.ends_read_at,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def read_manifest(target: ReplayTarget) -> dict[str, Any]:
    path = target.state_path / MANIFEST
    try:
        found: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found


# -- discarding --------------------------------------------------------------------------------


def discard(target: ReplayTarget) -> list[str]:
    """Delete the replay's topics and consumer group and its state directory; return what was
    removed. Refused while the replay's group has members (a replay or workers running)."""
    live_names = {spec.name for spec in target.live.all()}
    own = [name for name in target.own_topics() if name not in live_names]
    if target.group_id == target.live_settings.group_id or len(own) != 3:
        raise ReplayError("refusing to discard: the replay's names are the live deployment's")
    client = target.settings.as_librdkafka_dict()
    wait_for_broker(client, timeout=15.0)
    admin = AdminClient(client)
    state = _group_state(admin, target.group_id)
    if state in ("stable", "preparing_rebalance", "completing_rebalance"):
        raise ReplayError(
            f"group {target.group_id} has members: stop the replay (or the workers switched to "
            "it) first"
        )
    removed = []
    existing = admin.list_topics(timeout=30).topics
    doomed = [name for name in own if name in existing]
    if doomed:
        for name, future in admin.delete_topics(doomed, operation_timeout=30).items():
            try:
                future.result()
            except KafkaException as exc:
                raise BrokerError(f"cannot delete topic {name}: {exc}") from None
            removed.append(f"topic {name}")
    if state not in (None, "dead"):
        try:
            admin.delete_consumer_groups([target.group_id], request_timeout=30)[
                target.group_id
            ].result()
        except KafkaException as exc:
            raise BrokerError(f"cannot delete group {target.group_id}: {exc}") from None
        removed.append(f"group {target.group_id}")
    if target.state_path.exists():
        shutil.rmtree(target.state_path)
        removed.append(f"state {target.state_path}")
    return removed


def _group_state(admin: AdminClient, group_id: str) -> str | None:
    """The group's state in lower case (``empty``, ``stable``, ...), None if unknown."""
    try:
        group = admin.describe_consumer_groups([group_id], request_timeout=30)[group_id].result()
    except KafkaException:
        return None
    state = getattr(group.state, "name", str(group.state)).lower()
    return None if state == "unknown" else state
