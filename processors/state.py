"""The keyspaces of one partition's state, over any ``KV``.

Every key starts with a one-byte keyspace tag. ``pair`` is the record key
``name|correlationKey`` (``schemas.keys``, at most 5,121 bytes); ``pair*`` is the pair after
its length (2 bytes), so that no pair's keys start with another pair's, whatever its
correlation key holds. Numbers are 8-byte big-endian so that byte order is numeric order and
range scans walk times and sequences oldest first.

======  ==========================================  ==========================================
tag     key                                         value
======  ==========================================  ==========================================
``w``   waitId                                      pending wait (JSON list, see
                                                    ``PendingWait``) or, once resolved, its
                                                    tombstone: ``\\0``, expiresAt, resume JSON
``p``   pair*, windowStart, seq, waitId             empty: a wait pending on the pair
                                                    (windowStart: the record time of the oldest
                                                    event it can match; seq: registration order)
``n``   pair                                        the pair's counts: pending waits, buffered
                                                    events; the next wait's seq, the lowest
                                                    seq of its next event (4 × 8 bytes)
``e``   pair*, recordTime, seq                      expiresAt: a buffered event of the pair
                                                    (recordTime: its Kafka record's time; seq:
                                                    its input offset)
``b``   expiresAt, seq, recordTime, pair            buffered event body (wire JSON, as received)
``d``   name ``\\0`` idempotencyKey                  dedup entry: expiresAt
``t``   deadline, waitId                            pair (the timer index, deadline-ordered)
``x``   expiresAt, kind, key                        empty (the purge index of dedup entries and
                                                    tombstones, expiry-ordered)
``m``   name                                        metadata (``offsets@3``: input offsets; the
                                                    layout is in the name)
======  ==========================================  ==========================================

A wait and its tombstone share the key: a registration asks one question (pending, resolved,
or new?) with one read, and resolving a wait is one write. Every pending wait and buffered
event has entries of its own, so adding or removing one writes the same few entries however
many its pair holds. An event reads the ``p`` entries of its pair up to its record's time
(waits whose window has started), a registration the ``e`` entries from its window's start; the
``n`` counts spare both the scan of a pair with nothing to match. An event body's key starts
with its expiry, so the ``b`` keyspace is its own purge index, walked oldest first; its key
names the event's ``e`` entry.

``p``, ``e``, ``t`` and ``x`` are indexes derived from other entries (``w``, ``b``, ``d``). The
changelog does not carry them: a restore rebuilds them with :func:`derived_entries`, and
deleting a body deletes its ``e`` entry (:func:`derived_removals`). A restore adds the entries
a restored value implies and removes no others, so a restored store may hold stale ``p`` and
``t`` entries, which are harmless: a ``p`` entry whose wait is not pending under that seq is
skipped and deleted by the next event's scan of the pair (the counts never include it); a
stale timer fires a timer command that finds no such pending wait and deletes the entry
(``drop_timer``); a stale expiry entry is deleted by the purge that reaches it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pydantic_core import from_json, to_json

from waitline.processors.kv import KV, Overlay

__all__ = [
    "DERIVED",
    "LAYOUT",
    "BufferedEvent",
    "PartitionState",
    "PendingWait",
    "TimerEntry",
    "derived_entries",
    "derived_removals",
    "meta_key",
]

_U64 = struct.Struct(">Q")
_PAIR_LENGTH = struct.Struct(">H")
_COUNTS = struct.Struct(">QQQQ")
_MAX_KEY = b"\xff" * 9
_ZERO = bytes(8)

_WAIT = b"w"
_PENDING = b"p"
_COUNT = b"n"
_EVENTS = b"e"
_BODY = b"b"
_DEDUP = b"d"
_TIMER = b"t"
_EXPIRY = b"x"
_META = b"m"

EXPIRY_DEDUP = b"d"
EXPIRY_RESOLVED = b"r"

# The first byte of a tombstone under ``w`` (a pending wait's JSON list starts with ``[``).
_TOMBSTONE = b"\0"
_TOMBSTONE_BYTE = _TOMBSTONE[0]

# The version of this layout; the store's offsets key carries it (``processors.store``).
LAYOUT = b"3"


def meta_key(name: str) -> bytes:
    """The key of a metadata entry (e.g. ``offsets``, written by the store's commit)."""
    return _META + name.encode()


# The tags (first key bytes, as ints) of index entries the changelog leaves out (see the
# module docstring).
DERIVED = frozenset({_TIMER[0], _EXPIRY[0], _PENDING[0], _EVENTS[0]})


def derived_entries(key: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    """The index entries that the entry ``key = value`` implies."""
    tag = key[:1]
    if tag == _WAIT:
        if value[0] == _TOMBSTONE_BYTE:
            return [(_expiry_key(_U64.unpack_from(value, 1)[0], EXPIRY_RESOLVED, key[1:]), b"")]
        wait_id, pair, deadline, window_start, seq = PendingWait.index_of(value)
        return [
            (_timer_key(deadline, wait_id), pair),
            (_pending_key(pair, window_start, seq, key[1:]), b""),
        ]
    if tag == _BODY:
        return [_event_entry(key)]
    if tag == _DEDUP:
        return [(_expiry_key(_U64.unpack_from(value)[0], EXPIRY_DEDUP, key[1:]), b"")]
    return []


def derived_removals(key: bytes) -> list[bytes]:
    """The index entries to delete with the entry ``key`` (those its key alone names)."""
    if key[:1] == _BODY:
        return [_event_entry(key)[0]]
    return []


# Times here are never negative: the wire models bound them (>= 0) and the run loop stamps a
# record without a timestamp with the wall clock.
_u64 = _U64.pack


def _timer_key(deadline: int, wait_id: str) -> bytes:
    return _TIMER + _u64(deadline) + wait_id.encode()


def _expiry_key(expires_at: int, kind: bytes, key: bytes) -> bytes:
    return _EXPIRY + _u64(expires_at) + kind + key


def _pair_prefix(tag: bytes, pair: bytes) -> bytes:
    """``tag`` + the pair's length + the pair: no pair's prefix starts another pair's keys
    (and an ``Overlay`` tells the pair's keys by it: ``Overlay.group_scans``)."""
    return tag + _PAIR_LENGTH.pack(len(pair)) + pair


def _window_start(registered_at: int, lookback_ms: int | None) -> int:
    """The record time of the oldest event a wait can match: none before it ever does (§2.4)."""
    return 0 if lookback_ms is None else max(registered_at - lookback_ms, 0)


def _pending_key(pair: bytes, window_start: int, seq: int, wait_id: bytes) -> bytes:
    return _pair_prefix(_PENDING, pair) + _u64(window_start) + _u64(seq) + wait_id


def _event_key(pair: bytes, record_time: int, seq: int) -> bytes:
    return _pair_prefix(_EVENTS, pair) + _u64(record_time) + _u64(seq)


def _body_key(pair: bytes, event: BufferedEvent) -> bytes:
    return _BODY + _u64(event.expires_at) + _u64(event.seq) + _u64(event.record_time) + pair


def _event_entry(body_key: bytes) -> tuple[bytes, bytes]:
    """The ``e`` entry (key, value) of the body under ``body_key``."""
    expires_at, seq, record_time = struct.unpack_from(">QQQ", body_key, 1)
    return _event_key(body_key[25:], record_time, seq), _u64(expires_at)


# The keyspaces scanned a pair at a time: an Overlay keeps their buffered keys by pair.
_SCANNED = _PENDING + _EVENTS


@dataclass(slots=True)
class PendingWait:
    """A registered wait that has not resolved yet.

    ``seq`` orders the waits of a pair by registration; ``PartitionState.add_wait`` sets it.
    """

    wait_id: str
    run_id: str
    pair: bytes
    registered_at: int
    deadline: int
    on_timeout: str
    lookback_ms: int | None
    filter: str | None
    context: Any
    metadata: Any
    seq: int = field(default=0, compare=False)

    def to_bytes(self) -> bytes:
        return to_json(
            [
                self.wait_id,
                self.run_id,
                self.pair.decode(),
                self.registered_at,
                self.deadline,
                self.on_timeout,
                self.lookback_ms,
                self.filter,
                self.context,
                self.metadata,
                self.seq,
            ]
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> PendingWait:
        w, r, p, reg, dl, ot, lb, f, c, m, seq = from_json(raw)
        return cls(w, r, p.encode(), reg, dl, ot, lb, f, c, m, seq)

    @staticmethod
    def index_of(raw: bytes) -> tuple[str, bytes, int, int, int]:
        """``(wait_id, pair, deadline, window start, seq)`` of a stored wait, without building
        it (restore)."""
        fields = from_json(raw)
        return (
            fields[0],
            fields[2].encode(),
            fields[4],
            _window_start(fields[3], fields[6]),
            fields[10],
        )


@dataclass(slots=True)
class BufferedEvent:
    """An event kept for waits that register later.

    ``record_time`` is its Kafka record's time, which every window counts from (§2.4); the
    event's own ``timestamp`` field, if any, stays in its body.
    """

    record_time: int
    expires_at: int
    seq: int


@dataclass(slots=True)
class TimerEntry:
    deadline: int
    wait_id: str
    pair: bytes


class PartitionState:
    """Typed access to one partition's keyspaces. Holds no data of its own, only a hint for the
    run loop's timer scan (``earliest_new_timer``)."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv
        if isinstance(kv, Overlay):  # a pair's scans read only that pair's buffered writes
            kv.group_scans(_SCANNED)
        # The earliest deadline of a timer written since the run loop last took it (and set it
        # back to None): the loop scans for due timers from where its last scan ended, unless a
        # new one lies before. A hint only: one from a batch rolled back costs an earlier scan.
        self.earliest_new_timer: int | None = None

    # -- pending waits -------------------------------------------------------------------------

    def get_wait(self, wait_id: str) -> PendingWait | None:
        """The wait if it is pending (not if it resolved: see ``resolved``)."""
        raw = self.kv.get(_WAIT + wait_id.encode())
        if raw is None or raw[0] == _TOMBSTONE_BYTE:
            return None
        return PendingWait.from_bytes(raw)

    def find_wait(self, wait_id: str) -> PendingWait | tuple[int, bytes] | None:
        """The pending wait, else the ``resolved`` tombstone, else None: one read."""
        raw = self.kv.get(_WAIT + wait_id.encode())
        if raw is None:
            return None
        if raw[0] == _TOMBSTONE_BYTE:
            return int(_U64.unpack_from(raw, 1)[0]), raw[9:]
        return PendingWait.from_bytes(raw)

    def pending_on(self, pair: bytes, record_time: int | None = None) -> list[PendingWait]:
        """The waits pending on ``pair`` (with ``record_time``, an event record's: those whose
        lookback window starts at or before it), in registration order. Deletes the stale ``p``
        entries it meets (left by a restore: see the module docstring)."""
        raw = self.kv.get(_COUNT + pair)
        if raw is None or raw[:8] == _ZERO:  # no wait pending on it
            return []
        return self._pending(pair, record_time, clean=True)

    def waits_on(self, pair: bytes) -> list[str]:
        """The waitIds pending on ``pair``, in registration order."""
        return [wait.wait_id for wait in self._pending(pair, None, clean=False)]

    def _pending(self, pair: bytes, until: int | None, clean: bool) -> list[PendingWait]:
        # ``p`` entries are ordered by window start, then seq: the scan stops at ``until``, and
        # what it found is put in registration order.
        prefix = _pair_prefix(_PENDING, pair)
        at = len(prefix)
        stop = prefix + (_MAX_KEY if until is None else _u64(until + 1))
        unpack = _U64.unpack_from
        found = [(unpack(key, at + 8)[0], key) for key, _ in self.kv.scan(prefix, stop)]
        found.sort()
        out = []
        for seq, key in found:
            wait = self.get_wait(key[at + 16 :].decode())
            if (
                wait is not None
                and wait.seq == seq
                and wait.pair == pair
                and _window_start(wait.registered_at, wait.lookback_ms) == unpack(key, at)[0]
            ):
                out.append(wait)
            elif clean:
                self.kv.delete(key)
        return out

    def add_wait(self, wait: PendingWait) -> None:
        """Add a wait that is not pending; it takes the next seq of its pair."""
        kv, pair = self.kv, wait.pair
        raw = kv.get(_COUNT + pair)
        waits, events, seq, event_seq = (0, 0, 0, 0) if raw is None else _COUNTS.unpack(raw)
        wait.seq = seq
        key = wait.wait_id.encode()
        kv.put(_WAIT + key, wait.to_bytes())
        window_start = _window_start(wait.registered_at, wait.lookback_ms)
        kv.put(_pending_key(pair, window_start, seq, key), b"")
        kv.put(_COUNT + pair, _COUNTS.pack(waits + 1, events, seq + 1, event_seq))
        deadline = wait.deadline
        kv.put(_TIMER + _u64(deadline) + key, pair)
        earliest = self.earliest_new_timer
        if earliest is None or deadline < earliest:
            self.earliest_new_timer = deadline

    def remove_wait(self, wait: PendingWait) -> None:
        self.remove_waits(wait.pair, [wait])

    def remove_waits(self, pair: bytes, waits: list[PendingWait]) -> None:
        """Remove waits pending on ``pair`` (as ``pending_on`` returned them: an event resolves
        them together). Their ``mark_resolved`` comes after: the tombstone takes the wait's
        key."""
        kv = self.kv
        prefix = _pair_prefix(_PENDING, pair)
        for wait in waits:
            key = wait.wait_id.encode()
            kv.delete(_WAIT + key)
            kv.delete(_TIMER + _u64(wait.deadline) + key)
            window_start = _window_start(wait.registered_at, wait.lookback_ms)
            kv.delete(prefix + _u64(window_start) + _u64(wait.seq) + key)
        pending, events, seq, event_seq = self._counts(pair)
        self._set_counts(pair, max(pending - len(waits), 0), events, seq, event_seq)

    def drop_timer(self, deadline: int, wait_id: str) -> None:
        """Delete a timer entry that no pending wait owns (a stale one, after a restore)."""
        self.kv.delete(_timer_key(deadline, wait_id))

    def due_timers(self, now: int, limit: int, since: int = 0) -> list[TimerEntry]:
        """Timers with ``since <= deadline <= now``, earliest first, at most ``limit``."""
        out = []
        for key, pair in self.kv.scan(_TIMER + _u64(since), _TIMER + _u64(now + 1)):
            out.append(TimerEntry(_U64.unpack_from(key, 1)[0], key[9:].decode(), pair))
            if len(out) >= limit:
                break
        return out

    def next_deadline(self) -> int | None:
        for key, _ in self.kv.scan(_TIMER, _TIMER + _MAX_KEY):
            deadline: int = _U64.unpack_from(key, 1)[0]
            return deadline
        return None

    def iter_waits(self) -> Iterator[PendingWait]:
        for _, raw in self.kv.scan(_WAIT, _WAIT + _MAX_KEY):
            if raw[0] != _TOMBSTONE_BYTE:
                yield PendingWait.from_bytes(raw)

    # -- buffered events -----------------------------------------------------------------------

    def events_of(self, pair: bytes) -> list[BufferedEvent]:
        """Every buffered event of ``pair``, oldest first."""
        return list(self.events_since(pair, 0, None))

    def events_since(self, pair: bytes, since: int, limit: int | None) -> Iterator[BufferedEvent]:
        """The buffered events of ``pair`` with ``record_time >= since``, oldest first (by
        record time, then input offset), at most ``limit``: a seek to ``since``, then one entry
        per event."""
        raw = self.kv.get(_COUNT + pair)
        if raw is None or raw[8:16] == _ZERO:  # no event buffered
            return
        prefix = _pair_prefix(_EVENTS, pair)
        at = len(prefix)
        unpack = _U64.unpack_from
        for key, raw in islice(self.kv.scan(prefix + _u64(since), prefix + _MAX_KEY), limit):
            yield BufferedEvent(unpack(key, at)[0], unpack(raw)[0], unpack(key, at + 8)[0])

    def event_body(self, pair: bytes, event: BufferedEvent) -> bytes | None:
        return self.kv.get(_body_key(pair, event))

    def buffer_event(
        self, pair: bytes, event: BufferedEvent, body: bytes, limit: int | None = None
    ) -> bool:
        """Keep ``event`` for later waits, unless its pair holds ``limit`` events already;
        whether it was kept. A pair's events come in input order (``seq``, their offset): one
        whose seq is below the last kept's + 1 is a record applied again, and not kept twice."""
        kv, seq = self.kv, event.seq
        raw = kv.get(_COUNT + pair)
        waits, events, wait_seq, event_seq = (0, 0, 0, 0) if raw is None else _COUNTS.unpack(raw)
        if seq < event_seq or (limit is not None and events >= limit):
            return False
        ts, expires_at = _u64(event.record_time), _u64(event.expires_at)
        seq_bytes = _u64(seq)
        kv.put(_BODY + expires_at + seq_bytes + ts + pair, body)
        kv.put(_pair_prefix(_EVENTS, pair) + ts + seq_bytes, expires_at)
        kv.put(_COUNT + pair, _COUNTS.pack(waits, events + 1, wait_seq, seq + 1))
        return True

    def drop_event(self, pair: bytes, event: BufferedEvent) -> None:
        key = _body_key(pair, event)
        if self.kv.get(key) is not None:
            self._drop_body(key)

    def _drop_body(self, body_key: bytes) -> None:
        """Delete a stored body, its ``e`` entry, and count it out of its pair."""
        pair = body_key[25:]
        self.kv.delete(body_key)
        self.kv.delete(_event_entry(body_key)[0])
        waits, events, seq, event_seq = self._counts(pair)
        self._set_counts(pair, waits, max(events - 1, 0), seq, event_seq)

    def iter_buffered(self) -> Iterator[tuple[bytes, BufferedEvent]]:
        """Every buffered event: ``(pair, event)``, by pair, each pair's oldest first."""
        unpack = _U64.unpack_from
        for key, raw in self.kv.scan(_EVENTS, _EVENTS + _MAX_KEY):
            at = 3 + _PAIR_LENGTH.unpack_from(key, 1)[0]
            event = BufferedEvent(unpack(key, at)[0], unpack(raw)[0], unpack(key, at + 8)[0])
            yield key[3:at], event

    # -- deduplication -------------------------------------------------------------------------

    def dedup_expiry(self, name: str, idempotency_key: str) -> int | None:
        raw = self.kv.get(_DEDUP + self._dedup_key(name, idempotency_key))
        return None if raw is None else int(_U64.unpack(raw)[0])

    def remember_dedup(self, name: str, idempotency_key: str, expires_at: int) -> None:
        key = self._dedup_key(name, idempotency_key)
        self.kv.put(_DEDUP + key, _u64(expires_at))
        self._expire_at(expires_at, EXPIRY_DEDUP, key)

    # -- resolved waits ------------------------------------------------------------------------

    def resolved(self, wait_id: str) -> tuple[int, bytes] | None:
        """``(expiresAt, resume JSON)`` of a resolved wait's tombstone."""
        found = self.find_wait(wait_id)
        return found if isinstance(found, tuple) else None

    def mark_resolved(self, wait_id: str, expires_at: int, resume: bytes) -> None:
        """Keep a resolved wait's resume until ``expires_at``, in place of the pending wait."""
        key = wait_id.encode()
        self.kv.put(_WAIT + key, _TOMBSTONE + _u64(expires_at) + resume)
        self._expire_at(expires_at, EXPIRY_RESOLVED, key)

    # -- purge ---------------------------------------------------------------------------------

    def purge_expired(self, now: int, limit: int) -> int:
        """Remove up to ``limit`` entries that expired at or before ``now``; return the count."""
        # Event bodies are keyed by their expiry: the ``b`` keyspace is their purge index.
        bodies = [key for key, _ in islice(self.kv.scan(_BODY, _BODY + _u64(now + 1)), limit)]
        for key in bodies:
            self._drop_body(key)
        removed = len(bodies)
        for key, _ in list(islice(self.kv.scan(_EXPIRY, _EXPIRY + _u64(now + 1)), limit - removed)):
            expires_at = int(_U64.unpack_from(key, 1)[0])
            kind, rest = key[9:10], key[10:]
            if kind == EXPIRY_DEDUP:
                stored = self.kv.get(_DEDUP + rest)
                if stored is not None and _U64.unpack(stored)[0] <= expires_at:
                    self.kv.delete(_DEDUP + rest)
            elif kind == EXPIRY_RESOLVED:
                stored = self.kv.get(_WAIT + rest)
                if (
                    stored is not None
                    and stored[0] == _TOMBSTONE_BYTE
                    and _U64.unpack_from(stored, 1)[0] <= expires_at
                ):
                    self.kv.delete(_WAIT + rest)
            self.kv.delete(key)
            removed += 1
        return removed

    # -- metadata ------------------------------------------------------------------------------

    def get_meta(self, name: str) -> bytes | None:
        return self.kv.get(meta_key(name))

    def put_meta(self, name: str, value: bytes) -> None:
        self.kv.put(meta_key(name), value)

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _dedup_key(name: str, idempotency_key: str) -> bytes:
        return name.encode() + b"\0" + idempotency_key.encode()

    def _expire_at(self, expires_at: int, kind: bytes, key: bytes) -> None:
        self.kv.put(_expiry_key(expires_at, kind, key), b"")

    def _counts(self, pair: bytes) -> tuple[int, int, int, int]:
        """The pair's pending waits, buffered events, the seq its next wait takes, and the
        lowest seq its next buffered event may have."""
        raw = self.kv.get(_COUNT + pair)
        if raw is None:
            return 0, 0, 0, 0
        waits, events, wait_seq, event_seq = _COUNTS.unpack(raw)
        return waits, events, wait_seq, event_seq

    def _set_counts(
        self, pair: bytes, waits: int, events: int, wait_seq: int, event_seq: int
    ) -> None:
        if waits or events:
            self.kv.put(_COUNT + pair, _COUNTS.pack(waits, events, wait_seq, event_seq))
        else:  # nothing left on the pair: its sequences start again
            self.kv.delete(_COUNT + pair)
