"""The correlation core: (state, input record) → (state changes, output records).

Pure: no Kafka, no RocksDB, no clock. Every decision is a function of the partition state and
the record, and "now" is the record's own timestamp, so replaying the same input replays the
same decisions. The run loop (``processors.runtime``) hands records in, routes the returned
``Emit`` values to topics, and is the only code that reads the wall clock: it asks
``due_timers`` which deadlines passed and writes the timer commands to the log, and it calls
``purge`` on a schedule.

The rules are SPEC §2; each method names the clause it implements.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

from waitline.processors.filters import FilterCache, FilterCompileError
from waitline.processors.limits import (
    MAX_CONTEXT_BYTES,
    MAX_METADATA_BYTES,
    MAX_REASON_CHARS,
    output_bytes,
    record_size,
)
from waitline.processors.state import BufferedEvent, PartitionState, PendingWait
from waitline.schemas.durations import parse_duration
from waitline.schemas.keys import make_key
from waitline.schemas.models import (
    MAX_EPOCH_MS,
    Action,
    CancelWait,
    Event,
    Outcome,
    TimerFired,
    WaitRegistration,
    parse_wait_command,
)

__all__ = [
    "CoreSettings",
    "Correlator",
    "Counters",
    "Emit",
    "InputRecord",
    "Source",
    "Target",
    "resume_id_for",
]

# The event model's validator and serializer, called directly: ``model_validate_json`` and
# ``model_dump`` are Python wrappers that pass half a dozen keyword defaults on every call
# (0.2 µs of ~2.5 to validate an event, 1.2 µs of ~3 to dump one; docs/benchmarks.md).
_validate_event = Event.__pydantic_validator__.validate_json
_dump_event = Event.__pydantic_serializer__.to_python

_RESUME_NAMESPACE = uuid.UUID("6f1d3c52-7a0e-4c47-9a55-1f3f2b0a9d11")
_NAMESPACE_BYTES = _RESUME_NAMESPACE.bytes
HEADER_REASON = "waitline.error"
HEADER_SOURCE = "waitline.source"
# Written by the worker on a record it forwards to the partition of its pair: where the
# producer wrote it, kept on a dead letter of the forwarded copy.
HEADER_ORIGIN = "waitline.origin"
HEADER_SIZE = "waitline.size"
HEADER_SHA256 = "waitline.sha256"
_WORKER_HEADERS = frozenset({HEADER_REASON, HEADER_SOURCE, HEADER_SIZE, HEADER_SHA256})
# The longest key a dead letter of a too-large record carries (a pair's key is a few KiB at most).
_MAX_CARRIED_KEY = 4_096


class Source(enum.Enum):
    EVENTS = "events"
    WAIT_COMMANDS = "wait-commands"

    # Members are singletons compared by identity; the C-level identity hash is a dict key
    # lookup ~0.1 µs faster than Enum's Python ``__hash__`` (the run loop does several per
    # record).
    __hash__ = object.__hash__


class Target(enum.Enum):
    EVENTS = "events"
    RESUMES = "resumes"
    DEAD_LETTERS = "dead-letters"
    WAIT_COMMANDS = "wait-commands"
    CHANGELOG = "changelog"

    __hash__ = object.__hash__  # as Source's


Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(slots=True)
class InputRecord:
    """An input record as the core sees it.

    ``timestamp`` is the record's time, "now" for every rule. ``broker_time`` says the broker
    stamped it (``LogAppendTime``), so no producer chose it; otherwise ``wall`` is the worker's
    clock when it read the record (0: unknown), against which a producer's time is bounded.
    """

    source: Source
    key: bytes | None
    value: bytes | None
    timestamp: int
    partition: int
    offset: int
    headers: Headers = ()
    wall: int = 0
    broker_time: bool = False


@dataclass(slots=True)
class Emit:
    """An output record. ``partition`` None lets the producer's partitioner choose."""

    target: Target
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    partition: int | None = None
    timestamp: int | None = None  # None: the producer's clock


@dataclass(frozen=True, slots=True)
class CoreSettings:
    event_ttl_ms: int = 24 * 3_600_000
    dedup_window_ms: int = 24 * 3_600_000
    tombstone_retention_ms: int = 7 * 24 * 3_600_000
    max_record_bytes: int = 1_048_576
    # How far a producer-chosen record time may lie ahead of the worker's clock.
    max_clock_skew_ms: int = 300_000
    max_pair_events: int = 1_000_000
    max_registration_scan: int = 1_000
    # The worst-case cost (processors.celcost steps, ~20-40 ns each) of the `if` evaluations
    # one record may run: past it, the rest are not run (no match, counted).
    filter_steps_per_record: float = 2.0**25


@dataclass(slots=True)
class Counters:
    events: int = 0
    events_duplicate: int = 0
    events_buffered: int = 0
    registrations: int = 0
    registrations_duplicate: int = 0
    resumes_reemitted: int = 0
    cancels_unknown: int = 0
    timers_stale: int = 0
    timers_early: int = 0
    filters_not_run: int = 0
    resumes_without_event: int = 0
    dead_letters: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def resume_id_for(wait_id: str, registered_at: int) -> str:
    """Deterministic resume id: the same registration of a wait always yields the same id.

    ``uuid5(namespace, f"{waitId}@{registeredAt}")``, computed without building UUID objects.
    """
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + f"{wait_id}@{registered_at}".encode()).digest()
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class Correlator:
    """Applies SPEC §2 to one record at a time against a ``PartitionState``."""

    def __init__(self, settings: CoreSettings | None = None, filters: FilterCache | None = None):
        self.settings = settings or CoreSettings()
        self.filters = filters or FilterCache()
        self.counters = Counters()

    # -- entry points --------------------------------------------------------------------------

    def process(self, state: PartitionState, record: InputRecord) -> list[Emit]:
        """Apply one input record; return what to publish. Never raises for bad input (§2.7)."""
        value = record.value
        if value is None:
            return self._dead_letter(record, "record has no value (tombstones are not accepted)")
        # The record's time first: every refusal below stamps what it writes with a time that
        # fits (past year 9999 no deadline, expiry or resume time does).
        late = None
        if record.timestamp > MAX_EPOCH_MS:
            late = f"record timestamp {record.timestamp} is after the year 9999"
            record = replace(record, timestamp=MAX_EPOCH_MS)
        elif (
            record.wall
            and not record.broker_time
            and record.timestamp > record.wall + self.settings.max_clock_skew_ms
        ):
            # A producer's clock is not to be trusted that far: a registration stamped in year
            # 3000 would never time out, an event would be kept until then.
            late = (
                f"record timestamp {record.timestamp} is {record.timestamp - record.wall} ms "
                f"ahead of the worker's clock (the limit is {self.settings.max_clock_skew_ms})"
            )
            record = replace(record, timestamp=record.wall)
        size = record_size(record.key, value, record.headers)
        if size > self.settings.max_record_bytes:
            return self._too_large(state, record, size)
        if late is not None:
            return self._refuse(state, record, late)
        if record.source is Source.EVENTS:
            return self._on_event_record(state, record)
        return self._on_wait_command_record(state, record)

    def dead_letter(self, record: InputRecord, reason: str) -> list[Emit]:
        """Dead-letter ``record`` with ``reason`` (for the run loop's last line of defence)."""
        if record_size(record.key, record.value, record.headers) > self.settings.max_record_bytes:
            value = record.value or b""
            reference = replace(record, key=carried_key(record.key), value=None, headers=())
            return self._dead_letter(reference, reason, reference_headers(value))
        return self._dead_letter(record, reason)

    def due_timers(
        self, state: PartitionState, now: int, partition: int, limit: int, since: int = 0
    ) -> list[Emit]:
        """Timer commands for deadlines in [``since``, wall-clock ``now``] (§2.6)."""
        out = []
        for timer in state.due_timers(now, limit, since):
            name, _, key = timer.pair.decode().partition("|")
            command = TimerFired(
                type="timer",
                wait_id=timer.wait_id,
                name=name,
                correlation_key=key,
                deadline=timer.deadline,
            )
            out.append(Emit(Target.WAIT_COMMANDS, timer.pair, command.to_json(), (), partition))
        return out

    def purge(self, state: PartitionState, now: int, limit: int) -> int:
        """Drop expired events, dedup keys and tombstones (§2.8)."""
        return state.purge_expired(now, limit)

    # -- events --------------------------------------------------------------------------------

    def _on_event_record(self, state: PartitionState, record: InputRecord) -> list[Emit]:
        try:
            event: Event = _validate_event(record.value or b"")
        except ValidationError as exc:
            return self._dead_letter(record, f"invalid event: {_first_error(exc)}")
        pair = make_key(event.name, event.correlation_key)
        if record.key != pair:
            return self._dead_letter(record, _miskeyed(record.key, pair))
        if _maybe_non_finite(record.value) and _non_finite(event.data):
            return self._dead_letter(record, "invalid event: data holds NaN or an infinite number")
        # §2.4: every window (lookback, TTL, deadline) counts from the record's time, which is
        # the same whichever topic the worker reads first and on every replay. The event's own
        # ``timestamp`` is data: the resume carries it and an `if` reads it.
        now = record.timestamp
        self.counters.events += 1
        ttl = parse_duration(event.ttl) if event.ttl is not None else self.settings.event_ttl_ms
        expires_at = now + ttl

        # §2.5: an event seen again inside the dedup window neither matches nor is buffered.
        if event.idempotency_key is not None:
            expiry = state.dedup_expiry(event.name, event.idempotency_key)
            if expiry is not None and expiry > now:
                self.counters.events_duplicate += 1
                return []
            state.remember_dedup(
                event.name, event.idempotency_key, now + self.settings.dedup_window_ms
            )

        out: list[Emit] = []
        dumped: dict[str, Any] | None = None  # the event as the resume and filters see it
        # ttl 0: kept for no one, it matches the waits pending when it is processed (whatever
        # their registration time: else each such event would be checked against, and pass
        # over, every wait on its pair registered after it).
        alive_until = expires_at if ttl > 0 else MAX_EPOCH_MS + 1
        # §2.1 + §2.2: every pending wait on the pair whose filter holds, in registration order.
        resolved: list[PendingWait] = []
        spend = self.settings.filter_steps_per_record
        for wait in state.pending_on(pair, now):
            if not _fits(now, alive_until, wait):
                continue  # outside the wait's window, though processed while it is pending
            if dumped is None:
                dumped = _wire_event(event, now)
            if wait.filter is not None:
                spend -= self.filters.worst_steps(wait.filter)
                if spend < 0:
                    self.counters.filters_not_run += 1
                    continue
                if not self.filters.matches(wait.filter, dumped, wait.context):
                    continue
            resolved.append(wait)
        if resolved:
            state.remove_waits(pair, resolved)  # before the tombstones take their keys
            for wait in resolved:
                out.append(self._resolve(state, wait, "matched", "continue", dumped, now))

        # §2.4: keep the event for waits that register later, matched or not, until its TTL.
        if ttl > 0:
            body = record.value or b""
            kept = BufferedEvent(now, expires_at, record.offset)
            if state.buffer_event(pair, kept, body, self.settings.max_pair_events):
                self.counters.events_buffered += 1
        return out

    # -- wait commands -------------------------------------------------------------------------

    def _on_wait_command_record(self, state: PartitionState, record: InputRecord) -> list[Emit]:
        try:
            command = parse_wait_command(record.value or b"")
        except (ValidationError, ValueError) as exc:
            reason = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            return self._refuse(state, record, f"invalid wait command: {reason}")
        pair = make_key(command.name, command.correlation_key)
        if record.key != pair:
            reason = _miskeyed(record.key, pair)
            if isinstance(command, WaitRegistration):
                return self._reject(state, record, command.wait_id, command.run_id, reason)
            return self._dead_letter(record, reason)
        if isinstance(command, WaitRegistration):
            return self._on_register(state, record, command, pair)
        if isinstance(command, CancelWait):
            return self._on_cancel(state, record, command, pair)
        return self._on_timer(state, record, command, pair)

    def _on_register(
        self, state: PartitionState, record: InputRecord, reg: WaitRegistration, pair: bytes
    ) -> list[Emit]:
        now = record.timestamp
        # §2.5: pending → no-op; resolved → hand the original resume back. Checked before the
        # new body is judged, so a bad repeat of a known waitId never gives it a second outcome.
        known = state.find_wait(reg.wait_id)
        if isinstance(known, PendingWait):
            self.counters.registrations_duplicate += 1
            return []
        if known is not None and known[0] > now:  # a tombstone that has not expired
            self.counters.resumes_reemitted += 1
            original = known[1]
            # Keyed by the runId the resume names, as every resume is (§1).
            return [Emit(Target.RESUMES, _run_id_of(original, reg.run_id), original)]
        problem = _registration_problem(record.value or b"", reg)
        if problem is not None:
            reason, metadata_fits = problem
            metadata = reg.metadata if metadata_fits else None
            return self._reject(state, record, reg.wait_id, reg.run_id, reason, metadata)
        if reg.if_ is not None:
            try:
                self.filters.compile(reg.if_)
            except FilterCompileError as exc:
                reason = f"`if` expression does not compile: {exc}"
                return self._reject(state, record, reg.wait_id, reg.run_id, reason, reg.metadata)
            too_much = self.filters.context_problem(reg.if_, reg.context)
            if too_much is not None:
                return self._reject(state, record, reg.wait_id, reg.run_id, too_much, reg.metadata)
        self.counters.registrations += 1
        lookback = parse_duration(reg.lookback) if reg.lookback is not None else None
        wait = PendingWait(
            wait_id=reg.wait_id,
            run_id=reg.run_id,
            pair=pair,
            registered_at=now,
            deadline=now + parse_duration(reg.timeout),
            on_timeout=reg.on_timeout,
            lookback_ms=lookback,
            filter=reg.if_,
            context=reg.context,
            metadata=reg.metadata,
        )
        # §2.4: the oldest available event that fits the lookback window and the filter, among
        # the first max_registration_scan from the window's start.
        since = max(now - lookback, 0) if lookback is not None else 0
        scan = self.settings.max_registration_scan
        if wait.filter is not None:  # and no more evaluations than a record may run
            most = self.settings.filter_steps_per_record // self.filters.worst_steps(wait.filter)
            scan = max(1, min(scan, int(most)))
        for buffered in state.events_since(pair, since, scan):
            if not _fits(buffered.record_time, buffered.expires_at, wait):
                if buffered.record_time >= wait.deadline:
                    break  # and so is every later one
                continue
            body = state.event_body(pair, buffered)
            if body is None:
                continue
            dumped = _wire_event(_validate_event(body), buffered.record_time)
            if wait.filter is not None and not self.filters.matches(
                wait.filter, dumped, wait.context
            ):
                continue
            return [self._resolve(state, wait, "matched", "continue", dumped, now)]
        state.add_wait(wait)
        return []

    def _on_cancel(
        self, state: PartitionState, record: InputRecord, cmd: CancelWait, pair: bytes
    ) -> list[Emit]:
        wait = state.get_wait(cmd.wait_id)
        if wait is None or wait.pair != pair:  # a cancel acts on a wait of its own pair only
            self.counters.cancels_unknown += 1
            return []
        state.remove_wait(wait)
        return [self._resolve(state, wait, "cancelled", "cancel", None, record.timestamp)]

    def _on_timer(
        self, state: PartitionState, record: InputRecord, cmd: TimerFired, pair: bytes
    ) -> list[Emit]:
        wait = state.get_wait(cmd.wait_id)
        if wait is None or wait.deadline != cmd.deadline:
            self.counters.timers_stale += 1
            state.drop_timer(cmd.deadline, cmd.wait_id)  # left behind by a restore, if at all
            return []
        if wait.pair != pair or not self._deadline_passed(record, wait.deadline):
            # Not the worker's own timer (anyone may write wait-commands): a timeout is never
            # early. The wait's timer stays; the worker sends its own when the deadline passes.
            self.counters.timers_early += 1
            return []
        action: Action = wait.on_timeout  # type: ignore[assignment]
        state.remove_wait(wait)
        return [self._resolve(state, wait, "timed_out", action, None, record.timestamp)]

    # -- outcomes ------------------------------------------------------------------------------

    def _resolve(
        self,
        state: PartitionState,
        wait: PendingWait,
        outcome: Outcome,
        action: Action,
        event: dict[str, Any] | None,
        now: int,
    ) -> Emit:
        """§2.3: the one outcome of a wait; afterwards the wait exists only as a tombstone.

        The caller removes the wait from the pending ones first (the tombstone takes its key).
        ``event`` is the matching event as its wire JSON object (``_wire_event``).
        """
        ids = (resume_id_for(wait.wait_id, wait.registered_at), wait.wait_id, wait.run_id)
        times = (wait.metadata, wait.registered_at, max(now, wait.registered_at))
        resume = _resume_json(*ids, outcome, action, event, None, *times)
        if event is not None and len(resume) > output_bytes(self.settings.max_record_bytes):
            # Written back, its numbers in full, the event outgrew what a resume may carry.
            self.counters.resumes_without_event += 1
            error = (
                f"the matching event {event.get('eventId')!r} is too large to carry in a resume "
                f"({len(resume)} bytes); read it from the events topic"
            )
            resume = _resume_json(*ids, outcome, action, None, error, *times)
        state.mark_resolved(wait.wait_id, now + self.settings.tombstone_retention_ms, resume)
        self.counters.outcomes[outcome] = self.counters.outcomes.get(outcome, 0) + 1
        return Emit(Target.RESUMES, wait.run_id.encode(), resume)

    @staticmethod
    def _deadline_passed(record: InputRecord, deadline: int) -> bool:
        """Whether a timer record may time a wait out: its time is at or after the deadline,
        and, where a producer chose that time, so is the worker's clock."""
        if record.timestamp < deadline:
            return False
        return record.broker_time or not record.wall or record.wall >= deadline

    def _reject(
        self,
        state: PartitionState,
        record: InputRecord,
        wait_id: str,
        run_id: str,
        reason: str,
        metadata: Any = None,
        extra: Headers = (),
    ) -> list[Emit]:
        """§2.7: dead-letter a registration and tell its runner, so nobody waits forever.

        A waitId that is known keeps its one outcome (§2.3, §2.5): pending, the bad repeat is
        only dead-lettered; resolved, its original resume is handed back."""
        out = self._dead_letter(record, reason, extra)
        known = state.find_wait(wait_id)
        if isinstance(known, PendingWait):
            return out
        if known is not None and known[0] > record.timestamp:
            self.counters.resumes_reemitted += 1
            out.append(Emit(Target.RESUMES, _run_id_of(known[1], run_id), known[1]))
            return out
        out.append(_rejected_resume(wait_id, run_id, metadata, record.timestamp, _clip(reason)))
        self.counters.outcomes["rejected"] = self.counters.outcomes.get("rejected", 0) + 1
        return out

    def _refuse(
        self,
        state: PartitionState,
        record: InputRecord,
        reason: str,
        extra: Headers = (),
        ids: tuple[str, str] | None = None,
    ) -> list[Emit]:
        """Dead-letter a record that is not read further; a registration whose ids can be
        read (``ids``, else from the record) is rejected too (``_reject``)."""
        if record.source is Source.WAIT_COMMANDS:
            ids = ids or _salvage_ids(record.value or b"")
            if ids is not None:
                return self._reject(state, record, ids[0], ids[1], reason, None, extra)
        return self._dead_letter(record, reason, extra)

    def _too_large(self, state: PartitionState, record: InputRecord, size: int) -> list[Emit]:
        """A record over the size limit goes to the dead-letter topic as a reference: where it
        is, its size and its digest, without its value and headers (a copy might not fit)."""
        reason = f"record of {size} bytes exceeds the limit of {self.settings.max_record_bytes}"
        value = record.value or b""
        ids = None
        if record.source is Source.WAIT_COMMANDS:  # a runner puts its ids first
            ids = _scan_ids(value[:_SALVAGE_PREFIX])
        reference = replace(record, key=carried_key(record.key), value=None, headers=())
        return self._refuse(state, reference, reason, reference_headers(value, size), ids)

    def _dead_letter(self, record: InputRecord, reason: str, extra: Headers = ()) -> list[Emit]:
        """The record as it came (key, value, headers, timestamp), its headers of the worker's
        names replaced by the worker's: the reason and where it was read (a copy the worker
        forwarded keeps ``waitline.origin``, where the producer wrote it)."""
        self.counters.dead_letters += 1
        here = f"{record.source.value}/{record.partition}/{record.offset}".encode()
        headers = [h for h in record.headers if h[0] not in _WORKER_HEADERS]
        headers += [(HEADER_REASON, _clip(reason).encode()), (HEADER_SOURCE, here), *extra]
        kept = tuple(headers)
        return [Emit(Target.DEAD_LETTERS, record.key, record.value, kept, None, record.timestamp)]


def reference_headers(value: bytes, size: int | None = None) -> Headers:
    """What a dead letter carries in place of a record it cannot copy: its size and digest."""
    return (
        (HEADER_SIZE, str(len(value) if size is None else size).encode()),
        (HEADER_SHA256, hashlib.sha256(value).hexdigest().encode()),
    )


def carried_key(key: bytes | None) -> bytes | None:
    """A key as a dead letter by reference carries it: a key of over 4 KiB is left out."""
    return key if key is None or len(key) <= _MAX_CARRIED_KEY else None


def _wire_event(event: Event, record_time: int) -> dict[str, Any]:
    """The event as resumes and filters see it: its wire JSON object, its ``timestamp`` its
    own, else its record's time (kept beside the buffered body)."""
    wire: dict[str, Any] = _dump_event(event, by_alias=True, mode="json")
    if event.timestamp is None:
        wire["timestamp"] = record_time
    return wire


def _fits(record_time: int, expires_at: int, wait: PendingWait) -> bool:
    """Whether an event can resolve a wait, by record times alone, whatever order the two
    records were processed in.

    The event must still be alive when the wait registers (§2.4: not expired by
    ``registeredAt``), have been appended inside the wait's lookback window (none = anything
    buffered), and before the wait's deadline (§2.6: by then the outcome is ``timed_out``).
    """
    if expires_at <= wait.registered_at:
        return False
    if wait.lookback_ms is not None and record_time < wait.registered_at - wait.lookback_ms:
        return False
    return record_time < wait.deadline


def _run_id_of(resume: bytes, fallback: str) -> bytes:
    try:
        run_id = json.loads(resume)["runId"]
    except (ValueError, KeyError, TypeError):
        return fallback.encode()
    return str(run_id).encode()


def _rejected_resume(wait_id: str, run_id: str, metadata: Any, now: int, reason: str) -> Emit:
    resume = _resume_json(
        resume_id_for(wait_id, now), wait_id, run_id, "rejected", "fail", None, reason, metadata,
        now, now,
    )  # fmt: skip
    return Emit(Target.RESUMES, run_id.encode(), resume)


def _resume_json(
    resume_id: str,
    wait_id: str,
    run_id: str,
    outcome: Outcome,
    action: Action,
    event: dict[str, Any] | None,
    error: str | None,
    metadata: Any,
    registered_at: int,
    resolved_at: int,
) -> bytes:
    """The ``ResumeCommand`` wire JSON, written directly: every input is already validated, so
    building the model (and validating it again) would only cost time. Same fields, order and
    nulls as ``ResumeCommand.to_json``; a unit test holds the two equal."""
    return to_json(
        {
            "resumeId": resume_id,
            "waitId": wait_id,
            "runId": run_id,
            "outcome": outcome,
            "action": action,
            "event": event,
            "error": error,
            "metadata": metadata,
            "registeredAt": registered_at,
            "resolvedAt": resolved_at,
        },
        inf_nan_mode="null",
    )


def _salvage_ids(raw: bytes) -> tuple[str, str] | None:
    """waitId and runId of a registration that failed validation, if they can be read."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return _scan_ids(raw)  # nested too deeply, or not UTF-8 somewhere: read the top level
    if not isinstance(body, dict):
        return None
    return _ids_of(body.get("type", "register"), body.get("waitId"), body.get("runId"))


# A top-level JSON token: a string, a bracket, a colon or comma, or a bare literal.
# Possessive, and an unterminated string runs to the end: linear on any input.
_JSON_TOKEN = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?|[{}\[\]:,]|[^\s{}\[\]:,"]++', re.DOTALL)
_SALVAGE_PREFIX = 65_536  # of a too-large record, where its ids are looked for


def _scan_ids(raw: bytes) -> tuple[str, str] | None:
    """``_salvage_ids`` for a body ``json.loads`` refuses: the string members of the top-level
    object, read by a scan that does not recurse and skips what it cannot decode."""
    members: dict[Any, Any] = {}
    depth, key, after_colon = 0, None, False
    for match in _JSON_TOKEN.finditer(raw):
        token = match.group()
        first = token[0]
        if first in b"{[":
            depth += 1
            key, after_colon = None, False
            if depth == 1 and first != ord("{"):
                return None
        elif first in b"}]":
            depth -= 1
        elif depth != 1:
            continue
        elif first == ord(":"):
            after_colon = True
        elif first == ord('"'):
            text = _json_string(token)
            if not after_colon:
                key = text
                continue
            if key is not None:
                members[key] = text
            key, after_colon = None, False
        else:  # a comma or a bare literal
            key, after_colon = None, False
    return _ids_of(members.get("type", "register"), members.get("waitId"), members.get("runId"))


def _json_string(token: bytes) -> str | None:
    try:
        text = json.loads(token)
    except ValueError:  # not UTF-8, or a bad escape
        return None
    return text if isinstance(text, str) else None


def _encodable(text: str) -> bool:
    """Whether ``text`` has a UTF-8 form (``json.loads`` lets lone surrogates through)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _ids_of(kind: Any, wait_id: Any, run_id: Any) -> tuple[str, str] | None:
    if kind != "register":
        return None
    for value in (wait_id, run_id):
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_ID_CHARS:
            return None
        if not _encodable(value):
            return None
    return wait_id, run_id


_MAX_ID_CHARS = 512  # as the models' identifiers

# A number JSON can only carry as NaN, an infinity or a float too large for a double: Python's
# parser and pydantic's accept all three (as nan and inf) and write them back as null. Most
# records hold no such text, and only those that do are walked.
_NON_FINITE_HINT = re.compile(rb"NaN|Infinity|[0-9][eE]|(?<![0-9])[0-9]{300}")


def _maybe_non_finite(raw: bytes | None) -> bool:
    return raw is not None and _NON_FINITE_HINT.search(raw) is not None


def _non_finite(value: Any) -> bool:
    """Whether a parsed JSON value holds a float that is NaN or infinite (walked iteratively)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# How much larger JSON can come out than it went in: a number is written in full
# (``1e15`` becomes ``1000000000000000.0``); nothing else grows.
_MAX_GROWTH = 5


def _registration_problem(raw: bytes, reg: WaitRegistration) -> tuple[str, bool] | None:
    """Why a valid registration cannot be kept (a non-finite number, or a ``context`` or
    ``metadata`` over its size limit as waitline writes it), and whether its metadata may go
    back in the ``rejected`` resume."""
    if _maybe_non_finite(raw) and (_non_finite(reg.context) or _non_finite(reg.metadata)):
        return "invalid wait command: context or metadata holds NaN or an infinite number", False
    if len(raw) * _MAX_GROWTH <= min(MAX_CONTEXT_BYTES, MAX_METADATA_BYTES):
        return None  # neither can come out larger than its limit
    problems = []
    metadata_fits = True
    for name, value, limit in (
        ("context", reg.context, MAX_CONTEXT_BYTES),
        ("metadata", reg.metadata, MAX_METADATA_BYTES),
    ):
        size = len(to_json(value)) if value is not None else 0
        if size > limit:
            problems.append(f"{name} of {size} bytes exceeds the limit of {limit}")
            metadata_fits = name != "metadata" and metadata_fits
    return ("; ".join(problems), metadata_fits) if problems else None


def _clip(reason: str) -> str:
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return reason[: MAX_REASON_CHARS - 1] + "…"


def _miskeyed(actual: bytes | None, expected: bytes) -> str:
    return f"mis-keyed record: key {actual!r} does not match its body (expected {expected!r})"


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"
