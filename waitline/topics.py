"""``topics.yaml`` loaded into frozen objects, applied to a broker, and checked against it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    ResourceType,
)
from confluent_kafka.cimpl import NewTopic
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from waitline.errors import ConfigError, TopicError

__all__ = [
    "ROLES",
    "TopicSpec",
    "Topics",
    "check_broker_record_limits",
    "check_copartitioned",
    "check_record_limits",
    "create_topics",
    "load_topics",
]

Role = Literal["events", "wait-commands", "resumes", "changelog", "dead-letters"]
ROLES: tuple[Role, ...] = ("events", "wait-commands", "resumes", "changelog", "dead-letters")


class TopicSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    partitions: int = Field(gt=0)
    replication_factor: int = Field(default=-1, description="-1: the broker's default")
    config: dict[str, str] = Field(default_factory=dict)


class Topics(BaseModel):
    """The topics of one deployment, with the prefix already applied to every name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: TopicSpec
    wait_commands: TopicSpec = Field(alias="wait-commands")
    resumes: TopicSpec
    changelog: TopicSpec
    dead_letters: TopicSpec = Field(alias="dead-letters")

    def by_role(self, role: Role) -> TopicSpec:
        spec: TopicSpec = getattr(self, role.replace("-", "_"))
        return spec

    def all(self) -> list[TopicSpec]:
        return [self.by_role(role) for role in ROLES]


def load_topics(path: Path, prefix: str = "") -> Topics:
    """Read ``topics.yaml``; raise ConfigError naming the file and the problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"topics file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("topics"), Mapping):
        raise ConfigError(f"{path} must have a top-level 'topics:' mapping")
    entries: dict[str, Any] = {}
    for role, spec in raw["topics"].items():
        if isinstance(spec, Mapping):
            spec = {**spec, "name": prefix + str(spec.get("name", role))}
            spec["config"] = {k: str(v) for k, v in (spec.get("config") or {}).items()}
        entries[role] = spec
    try:
        return Topics.model_validate(entries)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: topics.{where}: {first['msg']}") from None


def create_topics(admin: AdminClient, topics: Topics, timeout: float = 30.0) -> dict[str, str]:
    """Create missing topics; return ``name → "created" | "exists"``. Idempotent."""
    existing = admin.list_topics(timeout=timeout).topics
    result: dict[str, str] = {}
    wanted = []
    for spec in topics.all():
        if spec.name in existing:
            result[spec.name] = "exists"
            have = len(existing[spec.name].partitions)
            if have != spec.partitions:
                result[spec.name] = (
                    f"exists with {have} partitions (topics.yaml says {spec.partitions})"
                )
        else:
            wanted.append(
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=spec.replication_factor,
                    config=dict(spec.config),
                )
            )
    if wanted:
        futures = admin.create_topics(wanted, operation_timeout=timeout, request_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result()
                result[name] = "created"
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    result[name] = "exists"
                else:
                    raise TopicError(f"cannot create topic {name}: {error.str()}") from None
    return result


def check_copartitioned(admin: AdminClient, topics: Topics, timeout: float = 30.0) -> int:
    """Return the shared partition count of events, wait-commands and changelog, or raise."""
    metadata = admin.list_topics(timeout=timeout).topics
    counts = {}
    for spec in (topics.events, topics.wait_commands, topics.changelog):
        meta = metadata.get(spec.name)
        if meta is None or meta.error is not None:
            raise TopicError(
                f"topic {spec.name!r} does not exist: run `waitline topics create` first"
            )
        counts[spec.name] = len(meta.partitions)
    events = counts[topics.events.name]
    for name, count in counts.items():
        if count != events:
            raise TopicError(
                f"{topics.events.name!r} has {events} partitions but {name!r} has {count}: "
                f"they must be equal (co-partitioned). Recreate {name!r} with {events} "
                "partitions (or all of them with the count in topics.yaml)."
            )
    return events


def check_record_limits(topics: Topics, max_record_bytes: int) -> None:
    """Raise ConfigError unless every topic takes the largest record waitline may write when it
    accepts inputs of ``max_record_bytes`` (``processors.limits``)."""
    from waitline.processors.limits import producer_max_bytes  # here: the SDK imports this module

    need = producer_max_bytes(max_record_bytes)
    for spec in topics.all():
        have = spec.config.get("max.message.bytes")
        if have is None or not have.isdigit() or int(have) < need:
            raise ConfigError(
                f"topic {spec.name}: max.message.bytes is {have or 'not set'} in the topics file, "
                f"below the {need} bytes waitline may write with a record limit of "
                f"{max_record_bytes} (WAITLINE_MAX_RECORD_BYTES): raise it there and on the broker"
            )


def check_broker_record_limits(
    admin: AdminClient, topics: Topics, max_record_bytes: int, timeout: float = 30.0
) -> None:
    """Raise TopicError when the broker says a topic takes less than waitline may write to it
    (a topic created before topics.yaml set ``max.message.bytes``, say). A broker that does
    not say (the embedded one leaves out what was not set at creation) passes."""
    from waitline.processors.limits import producer_max_bytes  # here: the SDK imports this module

    need = producer_max_bytes(max_record_bytes)
    resources = [ConfigResource(ResourceType.TOPIC, spec.name) for spec in topics.all()]
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        try:
            entries = future.result()
        except KafkaException:
            continue  # not described: nothing to compare (the topic check reports a missing one)
        entry = entries.get("max.message.bytes")
        have = entry.value if entry is not None else None
        if have is not None and have.isdigit() and int(have) < need:
            raise TopicError(
                f"topic {resource.name}: the broker's max.message.bytes is {have}, below the "
                f"{need} bytes waitline may write with a record limit of {max_record_bytes}: "
                f"raise it (kafka-configs --alter --add-config max.message.bytes={need} or "
                "more) or lower WAITLINE_MAX_RECORD_BYTES"
            )
