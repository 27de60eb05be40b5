"""The cluster's state without stopping a worker: read from the changelog topic.

Every partition's state is backed up to its ``changelog`` partition (compacted, state layout
3: ``processors.state``), so a reader of that topic sees all of them, whichever worker and
machine owns each. ``ChangelogView`` restores chosen partitions into scratch RocksDB stores with
the workers' own restore (``processors.restore``): only closed batches count (the records after
a partition's last ``offsets`` record belong to a commit that did not finish), and, for a
deployment that runs exactly_once, so do only batches within the group's committed offsets.
Nothing is written to Kafka, and the scratch stores are removed when the view closes.

The view is as fresh as the changelog: at_least_once, a batch's changelog follows its outputs
within a batch or so; a wait resolved since is still shown pending, and a cancel sent to it is a
no-op (``waitline_cancels_unknown_total``).

``group_status`` adds what the consumer group says: members, their partitions, committed
offsets against each input partition's end (read to its end, never ListOffsets alone).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from waitline.config import Settings
from waitline.errors import BrokerError
from waitline.logread import committed_offsets, end_offsets
from waitline.processors.restore import Restorer
from waitline.processors.state import PartitionState, PendingWait
from waitline.processors.store import OFFSETS_NAME, PartitionStore
from waitline.progress import Bar
from waitline.schemas.keys import make_key, partition_for
from waitline.topics import Topics

__all__ = [
    "ChangelogView",
    "GroupStatus",
    "MemberInfo",
    "PartitionStatus",
    "WaitFilter",
    "WaitLookup",
    "buffered_events",
    "group_status",
    "lookup_wait",
    "pending_waits",
    "wait_record",
]

INPUT_ROLES = ("events", "wait-commands")


class ChangelogView:
    """The state of ``partitions`` as the changelog holds it; a context manager.

    ``committed`` (exactly_once deployments): the group's committed input offsets per
    partition; batches beyond them belong to transactions that did not commit and are left
    out, as a worker's restore leaves them out."""

    def __init__(
        self,
        client: Mapping[str, Any],
        changelog: str,
        partitions: list[int],
        *,
        committed: dict[int, dict[str, int]] | None = None,
        bar: Bar | None = None,
    ) -> None:
        self._client = dict(client)
        self._changelog = changelog
        self._partitions = sorted(set(partitions))
        self._committed = committed
        self._bar = bar
        self._scratch: Path | None = None
        self._stores: dict[int, PartitionStore] = {}
        self.records = 0

    def __enter__(self) -> ChangelogView:
        self._scratch = Path(tempfile.mkdtemp(prefix="waitline-changelog-view-"))
        try:
            self._restore()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _restore(self) -> None:
        assert self._scratch is not None
        for partition in self._partitions:
            store = PartitionStore(self._scratch / f"partition-{partition}", partition)
            store.open()
            self._stores[partition] = store
        restorer = Restorer(self._client, self._changelog)
        try:
            restorer.begin(list(self._stores.values()), self._committed)
            done = 0
            if self._bar is not None:
                self._bar.update(total=len(self._partitions), completed=0)
            while restorer.restoring:
                for stats in restorer.step(0.5):
                    done += 1
                    self.records += stats.records
                    if self._bar is not None:
                        self._bar.update(completed=done)
        finally:
            restorer.close()

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    @property
    def partitions(self) -> list[int]:
        return list(self._partitions)

    def state(self, partition: int) -> PartitionState:
        return self._stores[partition].state

    def states(self) -> Iterator[tuple[int, PartitionState]]:
        for partition in self._partitions:
            yield partition, self._stores[partition].state

    def offsets(self, partition: int) -> dict[str, int]:
        """The input offsets the partition's last closed batch reached."""
        raw = self.state(partition).get_meta(OFFSETS_NAME)
        offsets: dict[str, int] = json.loads(raw) if raw else {}
        return offsets


def exactly_once_limits(
    settings: Settings, topics: Topics, partitions: list[int]
) -> dict[int, dict[str, int]] | None:
    """For an exactly_once deployment, the group's committed input offsets (the restore's
    limits); None otherwise."""
    if settings.guarantee != "exactly_once":
        return None
    client = settings.as_librdkafka_dict()
    limits: dict[int, dict[str, int]] = {p: {} for p in partitions}
    for role, spec in (("events", topics.events), ("wait-commands", topics.wait_commands)):
        found = committed_offsets(client, settings.group_id, spec.name, partitions)
        for partition, offset in found.items():
            if offset is not None:
                limits[partition][role] = offset
    return limits


def open_view(
    settings: Settings, topics: Topics, partitions: list[int], bar: Bar | None = None
) -> ChangelogView:
    """A ``ChangelogView`` of the deployment's changelog (enter it to read)."""
    return ChangelogView(
        settings.as_librdkafka_dict(),
        topics.changelog.name,
        partitions,
        committed=exactly_once_limits(settings, topics, partitions),
        bar=bar,
    )


# -- pending waits and buffered events ---------------------------------------------------------


@dataclass(frozen=True)
class WaitFilter:
    """Which pending waits (or buffered events: name and key prefix only) to take. Ages count
    from ``registeredAt`` (an event's: its record time) to the caller's ``now``."""

    name: str | None = None
    key_prefix: str | None = None
    run_id: str | None = None
    older_than_ms: int | None = None
    newer_than_ms: int | None = None

    @property
    def empty(self) -> bool:
        return self == WaitFilter()

    def pair_matches(self, pair: bytes) -> bool:
        name, _, key = pair.decode(errors="replace").partition("|")
        if self.name is not None and name != self.name:
            return False
        return self.key_prefix is None or key.startswith(self.key_prefix)

    def age_matches(self, at: int, now: int) -> bool:
        age = now - at
        if self.older_than_ms is not None and age < self.older_than_ms:
            return False
        return self.newer_than_ms is None or age <= self.newer_than_ms

    def matches(self, wait: PendingWait, now: int) -> bool:
        if self.run_id is not None and wait.run_id != self.run_id:
            return False
        return self.pair_matches(wait.pair) and self.age_matches(wait.registered_at, now)


def wait_record(partition: int, wait: PendingWait) -> dict[str, Any]:
    """A pending wait as the commands print it (the keys ``waitline inspect waits`` uses)."""
    name, _, key = wait.pair.decode(errors="replace").partition("|")
    return {
        "partition": partition,
        "waitId": wait.wait_id,
        "runId": wait.run_id,
        "name": name,
        "correlationKey": key,
        "registeredAt": wait.registered_at,
        "deadline": wait.deadline,
        "onTimeout": wait.on_timeout,
        "if": wait.filter,
    }


def pending_waits(view: ChangelogView, where: WaitFilter, now: int) -> Iterator[dict[str, Any]]:
    """The pending waits that ``where`` takes, partition by partition."""
    for partition, state in view.states():
        for wait in state.iter_waits():
            if where.matches(wait, now):
                yield wait_record(partition, wait)


def buffered_events(view: ChangelogView, where: WaitFilter, now: int) -> Iterator[dict[str, Any]]:
    """The buffered events (not yet expired by ``now``) whose pair ``where`` takes."""
    for partition, state in view.states():
        for pair, event in state.iter_buffered():
            if event.expires_at <= now or not where.pair_matches(pair):
                continue
            if not where.age_matches(event.record_time, now):
                continue
            body = state.event_body(pair, event)
            wire = json.loads(body) if body is not None else None
            if isinstance(wire, dict):
                wire.setdefault("timestamp", event.record_time)
            yield {
                "partition": partition,
                "recordTime": event.record_time,
                "expiresAt": event.expires_at,
                "event": wire,
            }


@dataclass(frozen=True)
class WaitLookup:
    """What the changelog says of one waitId on its pair's partition."""

    partition: int
    status: str  # "pending" | "resolved" | "unknown"
    wait: dict[str, Any] | None = None
    resume: dict[str, Any] | None = None

    def describe(self) -> str:
        if self.status == "pending" and self.wait is not None:
            return (
                f"wait {self.wait['waitId']} is pending on partition {self.partition} "
                f"(run {self.wait['runId']})"
            )
        if self.status == "resolved" and self.resume is not None:
            return (
                f"wait {self.resume.get('waitId')} resolved {self.resume.get('outcome')} "
                f"(run {self.resume.get('runId')})"
            )
        return f"no such wait is pending on partition {self.partition}"


def lookup_wait(
    settings: Settings,
    topics: Topics,
    partitions: int,
    wait_id: str,
    name: str,
    correlation_key: str,
    bar: Bar | None = None,
) -> WaitLookup:
    """Find ``wait_id`` in the changelog of its pair's partition (that one partition is read)."""
    pair = make_key(name, correlation_key)
    partition = partition_for(pair, partitions)
    with open_view(settings, topics, [partition], bar) as view:
        found = view.state(partition).find_wait(wait_id)
    if isinstance(found, PendingWait):
        if found.pair != pair:  # a cancel acts on a wait of its own pair only
            return WaitLookup(partition, "unknown")
        return WaitLookup(partition, "pending", wait=wait_record(partition, found))
    if found is not None:
        try:
            resume = json.loads(found[1])
        except ValueError:
            resume = {"waitId": wait_id}
        return WaitLookup(partition, "resolved", resume=resume)
    return WaitLookup(partition, "unknown")


# -- the consumer group ------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberInfo:
    member_id: str
    client_id: str
    host: str
    partitions: list[int]


@dataclass
class PartitionStatus:
    partition: int
    member: str | None = None
    committed: dict[str, int | None] = field(default_factory=dict)
    end: dict[str, int] = field(default_factory=dict)
    pending_waits: int | None = None
    buffered_events: int | None = None

    @property
    def lag(self) -> dict[str, int | None]:
        """Records after the committed offset, per input (None: nothing committed)."""
        out: dict[str, int | None] = {}
        for role, end in self.end.items():
            committed = self.committed.get(role)
            out[role] = None if committed is None else max(end - committed, 0)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "member": self.member,
            "committed": self.committed,
            "end": self.end,
            "lag": self.lag,
            "pendingWaits": self.pending_waits,
            "bufferedEvents": self.buffered_events,
        }


@dataclass
class GroupStatus:
    group_id: str
    state: str
    # None: the broker described the group without its members (the embedded broker does).
    members: list[MemberInfo] | None
    partitions: list[PartitionStatus]

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group_id,
            "state": self.state,
            "members": None
            if self.members is None
            else [
                {
                    "memberId": m.member_id,
                    "clientId": m.client_id,
                    "host": m.host,
                    "partitions": m.partitions,
                }
                for m in self.members
            ],
            "partitions": [p.as_dict() for p in self.partitions],
        }


def describe_group(
    client: Mapping[str, Any], group_id: str, events_topic: str
) -> tuple[str, list[MemberInfo] | None]:
    """The group's state and members (with their partitions of ``events_topic``); members None
    when the broker says the group has members but does not name them."""
    admin = AdminClient(dict(client))
    try:
        described = admin.describe_consumer_groups([group_id], request_timeout=30)[group_id]
        group = described.result()
    except KafkaException as exc:
        raise BrokerError(f"cannot describe group {group_id}: {exc}") from None
    state = getattr(group.state, "name", str(group.state)).lower()
    members = []
    for member in group.members or []:
        assigned = member.assignment.topic_partitions if member.assignment else []
        members.append(
            MemberInfo(
                member.member_id,
                member.client_id,
                member.host,
                sorted(tp.partition for tp in assigned if tp.topic == events_topic),
            )
        )
    if not members and state in ("stable", "preparing_rebalance", "completing_rebalance"):
        return state, None
    return state, members


def group_status(
    settings: Settings,
    topics: Topics,
    partitions: int,
    *,
    with_state: bool = True,
    bar: Bar | None = None,
) -> GroupStatus:
    """Members, partitions per member, lag per input partition, and (``with_state``) pending
    waits and buffered events per partition from the changelog."""
    client = settings.as_librdkafka_dict()
    numbers = list(range(partitions))
    state, members = describe_group(client, settings.group_id, topics.events.name)
    owner = {p: m.member_id for m in members or [] for p in m.partitions}
    rows = {p: PartitionStatus(p, owner.get(p)) for p in numbers}
    for role, spec in (("events", topics.events), ("wait-commands", topics.wait_commands)):
        committed = committed_offsets(client, settings.group_id, spec.name, numbers)
        ends = end_offsets(client, spec.name, numbers, bar=bar)
        for p in numbers:
            rows[p].committed[role] = committed.get(p)
            rows[p].end[role] = ends[p]
    if with_state:
        with open_view(settings, topics, numbers, bar) as view:
            for p, partition_state in view.states():
                rows[p].pending_waits = sum(1 for _ in partition_state.iter_waits())
                rows[p].buffered_events = sum(1 for _ in partition_state.iter_buffered())
    return GroupStatus(settings.group_id, state, members, [rows[p] for p in numbers])
