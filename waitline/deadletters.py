"""The dead-letter topic for operators: list, show, and re-drive records to their topic.

A dead letter is the original record (key, value, headers, record time) with the worker's
headers: ``waitline.error`` (why), ``waitline.source`` (``events/3/1042``: role, partition,
offset where the worker read it) and, on a copy the worker had forwarded to its pair's
partition, ``waitline.origin`` (where the producer wrote it). A record over the size limit is
dead-lettered by reference: no value, ``waitline.size`` and ``waitline.sha256`` instead. An
output the broker refused comes by reference too, without ``waitline.source``: it is no input,
and is never re-driven.

Re-driving sends a record again to the topic of its role (``events`` or ``wait-commands``),
keyed as it was (partitioned by murmur2 like every waitline producer), with its own headers and
``waitline.redriven-from`` (``<dead-letters topic>/<partition>/<offset>``) in place of the
worker's, optionally with a new value (``--edit``). Each dead letter is re-driven at most once.
That is recorded in a small compacted topic beside the dead letters, ``<dead-letters>-redriven``
(created on the first re-drive), keyed by the dead letter's ``partition/offset``:

1. a ``claimed`` marker is written (and acknowledged) before the record is sent;
2. the markers are read back: of the claims written since the key's last ``failed`` marker, the
   first in the topic's order wins (one partition: one order for everyone), so two operators
   re-driving the same record at once send it once;
3. the record is sent; then a ``sent`` marker (with where it went) or a ``failed`` one.

A dead letter with any marker but ``failed`` last is not sent again: a ``claimed`` one without
``sent`` is a re-drive interrupted between its claim and its send, which may or may not have
reached the topic (the target topic, read for ``waitline.redriven-from``, says which). The
marker topic, not a local file, so that every operator and machine sees the same record, and not
a scan of the target topics for the header, which would read whole input topics on every run
and forget once their retention removed the re-sent record.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from pydantic import ValidationError

from waitline.config import Settings
from waitline.errors import BrokerError, WaitlineError
from waitline.logread import read_to_end, record_at
from waitline.processors.correlation import (
    HEADER_ORIGIN,
    HEADER_REASON,
    HEADER_SHA256,
    HEADER_SIZE,
    HEADER_SOURCE,
)
from waitline.processors.limits import producer_max_bytes
from waitline.progress import Bar
from waitline.schemas.keys import make_key
from waitline.schemas.models import Event, parse_wait_command
from waitline.timespec import format_ms
from waitline.topics import Topics

__all__ = [
    "DeadLetter",
    "DeadLetterError",
    "Marker",
    "RedriveReport",
    "Selection",
    "check_edit",
    "dead_letters",
    "find",
    "letter_ids",
    "marker_topic",
    "parse_id",
    "redrive",
    "redrive_status",
    "statuses",
]

HEADER_REDRIVEN_FROM = "waitline.redriven-from"
# The worker's headers on a dead letter: a re-sent record carries none of them.
_WORKER_HEADERS = frozenset(
    {HEADER_REASON, HEADER_SOURCE, HEADER_ORIGIN, HEADER_SIZE, HEADER_SHA256, HEADER_REDRIVEN_FROM}
)
INPUT_ROLES = ("events", "wait-commands")

Headers = tuple[tuple[str, bytes | None], ...]


class DeadLetterError(WaitlineError):
    """A dead letter that does not exist, or cannot be re-driven as asked."""


def marker_topic(topics: Topics) -> str:
    """The compacted topic that records re-drives."""
    return f"{topics.dead_letters.name}-redriven"


def parse_id(text: str) -> tuple[int, int]:
    """``OFFSET`` (partition 0) or ``PARTITION/OFFSET``."""
    parts = text.strip().split("/")
    if len(parts) == 1 and parts[0].isdigit():
        return 0, int(parts[0])
    if len(parts) == 2 and all(part.isdigit() for part in parts):
        return int(parts[0]), int(parts[1])
    raise DeadLetterError(
        f"{text!r} names no dead letter: use its offset (12) or partition/offset (0/12)"
    )


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @classmethod
    def from_message(cls, msg: Message) -> DeadLetter:
        raw = msg.headers() or []
        items = raw.items() if isinstance(raw, dict) else raw
        headers = tuple(
            (name, value if value is None or isinstance(value, bytes) else value.encode())
            for name, value in items
        )
        return cls(
            msg.partition() or 0,
            msg.offset() or 0,
            msg.timestamp()[1],
            msg.key(),
            msg.value(),
            headers,
        )

    @property
    def id(self) -> str:
        return f"{self.partition}/{self.offset}"

    def header(self, name: str) -> str | None:
        for key, value in reversed(self.headers):
            if key == name:
                return value.decode(errors="replace") if value is not None else ""
        return None

    @property
    def reason(self) -> str:
        return self.header(HEADER_REASON) or ""

    @property
    def source(self) -> str | None:
        """Where the worker read it: ``role/partition/offset``."""
        return self.header(HEADER_SOURCE)

    @property
    def role(self) -> str | None:
        """``events`` or ``wait-commands``; None for a refused output."""
        source = self.source
        role = source.split("/", 1)[0] if source else None
        return role if role in INPUT_ROLES else None

    @property
    def reference(self) -> bool:
        """Dead-lettered by reference (too large to copy): no value here."""
        return self.value is None and self.header(HEADER_SIZE) is not None

    def redrive_problem(self, edited: bool = False) -> str | None:
        """Why this dead letter cannot be re-driven (``edited``: with a new value), or None."""
        if self.role is None:
            return "an output the broker refused, not an input record: nothing to re-drive"
        if self.reference and not edited:
            return (
                f"a reference to a record of {self.header(HEADER_SIZE)} bytes, too large to "
                f"copy: its value is not here (the record is at {self.source} until that "
                "topic's retention removes it); re-drive a corrected copy with --edit FILE"
            )
        return None

    def user_headers(self) -> Headers:
        return tuple(h for h in self.headers if h[0] not in _WORKER_HEADERS)

    def as_dict(self, *, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "reason": self.reason,
            "source": self.source,
            "origin": self.header(HEADER_ORIGIN),
            "key": _text(self.key),
            "reference": self.reference,
        }
        if self.reference:
            out["size"] = int(self.header(HEADER_SIZE) or 0)
            out["sha256"] = self.header(HEADER_SHA256)
        if full:
            out["value"] = _text(self.value)
            if self.value is not None and out["value"] is None:
                out["valueBase64"] = base64.b64encode(self.value).decode()
            out["headers"] = [[name, _text(value)] for name, value in self.headers]
        return out


@dataclass(frozen=True)
class Selection:
    """Which dead letters: by id, and/or by reason (substring, any case), source role and
    record time (``since`` inclusive, ``until`` exclusive, epoch ms)."""

    ids: tuple[tuple[int, int], ...] = ()
    reason: str | None = None
    role: str | None = None
    since: int | None = None
    until: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.ids and (letter.partition, letter.offset) not in self.ids:
            return False
        if self.reason is not None and self.reason.lower() not in letter.reason.lower():
            return False
        if self.role is not None and letter.role != self.role:
            return False
        if self.since is not None and letter.timestamp < self.since:
            return False
        return self.until is None or letter.timestamp < self.until


def _partitions(client: Mapping[str, Any], topic: str) -> list[int] | None:
    # Every topic's metadata, never the one topic's: a metadata request that names a missing
    # topic lets the broker create it with its defaults (auto.create.topics.enable).
    metadata = AdminClient(dict(client)).list_topics(timeout=30).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return None
    return sorted(metadata.partitions)


def dead_letters(
    settings: Settings, topics: Topics, selection: Selection, bar: Bar | None = None
) -> Iterator[DeadLetter]:
    """The dead letters ``selection`` takes, in partition and offset order."""
    client = settings.as_librdkafka_dict()
    topic = topics.dead_letters.name
    partitions = _partitions(client, topic)
    if partitions is None:
        raise BrokerError(f"topic {topic!r} does not exist: run `waitline topics create` first")
    if selection.ids:
        for partition, offset in sorted(set(selection.ids)):
            letter = find(settings, topics, partition, offset)
            if selection.matches(letter):
                yield letter
        return
    for msg in read_to_end(client, topic, partitions, bar=bar):
        letter = DeadLetter.from_message(msg)
        if selection.matches(letter):
            yield letter


def find(settings: Settings, topics: Topics, partition: int, offset: int) -> DeadLetter:
    topic = topics.dead_letters.name
    client = settings.as_librdkafka_dict()
    partitions = _partitions(client, topic) or []
    if partition not in partitions:
        raise DeadLetterError(f"{topic} has no partition {partition}")
    msg = record_at(client, topic, partition, offset)
    if msg is None:
        raise DeadLetterError(
            f"no dead letter at {partition}/{offset} of {topic} (past the end, or removed by "
            "retention)"
        )
    return DeadLetter.from_message(msg)


# -- re-drive markers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    offset: int
    state: str  # claimed | sent | failed
    claim: str
    at: int
    to: str | None = None
    error: str | None = None
    edited: bool = False


def _markers(client: Mapping[str, Any], topic: str) -> dict[str, list[Marker]]:
    """Every marker, by dead letter id, in the topic's order."""
    if _partitions(client, topic) is None:
        return {}
    found: dict[str, list[Marker]] = {}
    for msg in read_to_end(client, topic, [0]):
        key, raw = msg.key(), msg.value()
        if key is None or raw is None:
            continue
        try:
            body = json.loads(raw)
        except ValueError:
            continue
        found.setdefault(key.decode(errors="replace"), []).append(
            Marker(
                msg.offset() or 0,
                str(body.get("state")),
                str(body.get("claim")),
                int(body.get("at", 0)),
                body.get("to"),
                body.get("error"),
                bool(body.get("edited", False)),
            )
        )
    return found


def redrive_status(markers: list[Marker] | None) -> dict[str, Any] | None:
    """What the markers say of one dead letter: None (never re-driven, or every attempt
    failed), else ``{"state": "sent"|"claimed", "at": ms, "to": "topic/p/o"}``."""
    if not markers or markers[-1].state == "failed":
        return None
    sent = [m for m in markers if m.state == "sent"]
    last = sent[-1] if sent else markers[-1]
    return {"state": last.state, "at": last.at, "to": last.to, "edited": last.edited}


def statuses(settings: Settings, topics: Topics) -> dict[str, dict[str, Any] | None]:
    found = _markers(settings.as_librdkafka_dict(), marker_topic(topics))
    return {key: redrive_status(markers) for key, markers in found.items()}


def _ensure_marker_topic(client: Mapping[str, Any], topics: Topics) -> str:
    name = marker_topic(topics)
    if _partitions(client, name) is not None:
        return name
    spec = NewTopic(
        name,
        num_partitions=1,
        replication_factor=topics.dead_letters.replication_factor,
        config={
            "cleanup.policy": "compact",
            # Claims stay uncompacted long enough for racing re-drives to see each other's.
            "min.compaction.lag.ms": "86400000",
        },
    )
    admin = AdminClient(dict(client))  # kept until the future is done: it owns the request
    future = admin.create_topics([spec], operation_timeout=30)[name]
    try:
        future.result()
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise BrokerError.from_kafka(error, f"cannot create topic {name}") from None
    return name


# -- re-drive ----------------------------------------------------------------------------------


@dataclass
class RedriveReport:
    redriven: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        by_topic: dict[str, int] = {}
        for item in self.redriven:
            topic = str(item["to"]).rsplit("/", 2)[0]
            by_topic[topic] = by_topic.get(topic, 0) + 1
        where = ", ".join(f"{n} to {t}" for t, n in sorted(by_topic.items()))
        text = f"re-drove {len(self.redriven)} dead letter{'s' * (len(self.redriven) != 1)}"
        if where:
            text += f" ({where})"
        text += f"; skipped {len(self.skipped)}"
        if self.failed:
            text += f"; {len(self.failed)} failed"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"redriven": self.redriven, "skipped": self.skipped, "failed": self.failed}


def check_edit(letter: DeadLetter, value: bytes, rekey: bool) -> bytes | None:
    """Validate a new value for ``letter`` against its topic's wire model; return the key it
    goes with (the record's own, or with ``rekey`` its body's ``name|correlationKey``)."""
    try:
        if letter.role == "events":
            event = Event.model_validate_json(value)
            pair = make_key(event.name, event.correlation_key)
        else:
            command = parse_wait_command(value)
            pair = make_key(command.name, command.correlation_key)
    except (ValidationError, ValueError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) and exc.errors() else None
        where = ".".join(str(p) for p in first["loc"]) if first else ""
        why = f"{where}: {first['msg']}" if first else str(exc)
        noun = "an event" if letter.role == "events" else "a wait command"
        raise DeadLetterError(f"the edited record is not {noun}: {why}") from None
    if rekey:
        return pair
    if letter.key != pair:
        raise DeadLetterError(
            f"the edited record's key {letter.key!r} does not match its body ({pair!r}): "
            "the worker would dead-letter it again; pass --rekey to key it by its body"
        )
    return letter.key


def redrive(
    settings: Settings,
    topics: Topics,
    letters: list[DeadLetter],
    *,
    edit: bytes | None = None,
    rekey: bool = False,
    bar: Bar | None = None,
) -> RedriveReport:
    """Send ``letters`` to their topics again, each at most once (module docstring);
    ``edit``: the new value of the one letter given."""
    client = settings.as_librdkafka_dict()
    if edit is not None and len(letters) != 1:
        raise DeadLetterError(
            f"--edit replaces the value of one dead letter; {len(letters)} are selected"
        )
    report = RedriveReport()
    markers_topic = _ensure_marker_topic(client, topics)
    before = _markers(client, markers_topic)
    chosen: list[tuple[DeadLetter, bytes | None, bytes | None]] = []  # letter, key, value
    for letter in letters:
        problem = letter.redrive_problem(edited=edit is not None)
        status = redrive_status(before.get(letter.id))
        if problem is None and status is not None:
            problem = (
                f"already re-driven at {format_ms(status['at'])} to {status['to']}"
                if status["state"] == "sent"
                else f"a re-drive claimed it at {format_ms(status['at'])} and did not finish: "
                "not sent again"
            )
        if problem is not None:
            report.skipped.append({"id": letter.id, "why": problem})
            continue
        key, value = letter.key, letter.value
        if edit is not None:
            key, value = check_edit(letter, edit, rekey), edit
        elif rekey and value is not None:
            key = check_edit(letter, value, rekey=True)
        chosen.append((letter, key, value))
    if not chosen:
        return report

    claim = str(uuid.uuid4())
    producer = Producer(
        {
            **client,
            "enable.idempotence": True,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "message.max.bytes": producer_max_bytes(settings.max_record_bytes),
        }
    )
    edited = edit is not None

    def mark(letter: DeadLetter, state: str, **extra: Any) -> None:
        body = {"state": state, "claim": claim, "at": int(time.time() * 1000), **extra}
        if edited:
            body["edited"] = True
        producer.produce(markers_topic, json.dumps(body).encode(), letter.id.encode())

    for letter, _, _ in chosen:
        mark(letter, "claimed")
    _flush(producer, "the re-drive claims")
    after = _markers(client, markers_topic)
    winners = []
    for letter, key, value in chosen:
        attempt = _current_attempt(after.get(letter.id, []))
        if attempt and attempt[0].claim == claim:
            winners.append((letter, key, value))
        else:
            report.skipped.append({"id": letter.id, "why": "another re-drive claimed it first"})

    results: dict[str, tuple[str | None, str | None]] = {}

    def delivered(letter_id: str) -> Any:
        def report_back(error: KafkaError | None, msg: Message) -> None:
            if error is not None:
                results[letter_id] = (None, error.str())
            else:
                results[letter_id] = (f"{msg.topic()}/{msg.partition()}/{msg.offset()}", None)

        return report_back

    origin = topics.dead_letters.name
    for letter, key, value in winners:
        topic = topics.events.name if letter.role == "events" else topics.wait_commands.name
        headers: list[tuple[str, str | bytes | None]] = [
            *letter.user_headers(),
            (HEADER_REDRIVEN_FROM, f"{origin}/{letter.id}".encode()),
        ]
        try:
            producer.produce(topic, value, key, on_delivery=delivered(letter.id), headers=headers)
        except KafkaException as exc:
            results[letter.id] = (None, str(exc))
        except BufferError:
            producer.flush(10)
            producer.produce(topic, value, key, on_delivery=delivered(letter.id), headers=headers)
        if bar is not None:
            bar.advance()
    producer.flush(30)
    for letter, _, _ in winners:
        to, error = results.get(letter.id, (None, "not acknowledged within 30s"))
        if to is not None:
            mark(letter, "sent", to=to)
            report.redriven.append({"id": letter.id, "to": to, "edited": edited})
        else:
            mark(letter, "failed", error=error)
            report.failed.append({"id": letter.id, "error": error})
    _flush(producer, "the re-drive markers")
    return report


def _current_attempt(markers: list[Marker]) -> list[Marker]:
    """The markers since the last ``failed`` one (a failed re-drive may be tried again)."""
    for index in range(len(markers) - 1, -1, -1):
        if markers[index].state == "failed":
            return markers[index + 1 :]
    return markers


def _flush(producer: Producer, what: str) -> None:
    if producer.flush(30) > 0:
        raise BrokerError(f"{what} were not acknowledged within 30s")


def letter_ids(texts: Iterable[str]) -> tuple[tuple[int, int], ...]:
    return tuple(parse_id(text) for text in texts)
