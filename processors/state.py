"""The keyspaces of one partition's state, over any ``KV``.

Every key starts with a one-byte keyspace tag. ``pair`` is the record key
``name|correlationKey`` (``schemas.keys``); numbers are 8-byte big-endian so that byte order is
numeric order and range scans walk deadlines and expiries oldest first.

======  ==========================================  ==========================================
tag     key                                         value
======  ==========================================  ==========================================
``w``   waitId                                      pending wait (JSON list, see
                                                    ``PendingWait``) or, once resolved, its
                                                    tombstone: ``\\0``, expiresAt, resume JSON
``i``   pair                                        waitIds pending on the pair, registration
                                                    order (JSON list)
``e``   pair                                        buffered events of the pair, oldest first:
                                                    JSON list of ``[timestamp, expiresAt, seq]``
``b``   expiresAt, seq, pair                        buffered event body (wire JSON)
``d``   name ``\\0`` idempotencyKey                  dedup entry: expiresAt
``t``   deadline, waitId                            pair (the timer index, deadline-ordered)
``x``   expiresAt, kind, key                        empty (the purge index of dedup entries and
                                                    tombstones, expiry-ordered)
``m``   name                                        metadata (``offsets@2``: input offsets; the
                                                    layout is in the name)
======  ==========================================  ==========================================

A wait and its tombstone share the key: a registration asks one question (pending, resolved,
or new?) with one read, and resolving a wait is one write. An event body's key starts with its
expiry, so the ``b`` keyspace is its own purge index, walked oldest first; the ``e`` triple
names the body's key.

``t`` and ``x`` are indexes derived from other entries (``w``, ``d``). The changelog
does not carry them: a restore rebuilds them with :func:`derived_entries`. It adds the entries a
restored value implies and never removes any, so a restored store may hold stale ones, which
are harmless: a stale timer fires a timer command that finds no such pending wait and deletes
the entry (``drop_timer``); a stale expiry entry is deleted by the purge that reaches it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from pydantic_core import from_json, to_json

from processors.kv import KV

__all__ = [
    "DERIVED",
    "LAYOUT",
    "BufferedEvent",
    "PartitionState",
    "PendingWait",
    "TimerEntry",
    "derived_entries",
    "meta_key",
]

_U64 = struct.Struct(">Q")
_MAX_KEY = b"\xff" * 9

_WAIT = b"w"
_INDEX = b"i"
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
LAYOUT = b"2"


def meta_key(name: str) -> bytes:
    """The key of a metadata entry (e.g. ``offsets``, written by the store's commit)."""
    return _META + name.encode()


# The tags (first key bytes, as ints) of index entries the changelog leaves out (see the
# module docstring).
DERIVED = frozenset({_TIMER[0], _EXPIRY[0]})


def derived_entries(key: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    """The index entries that the entry ``key = value`` implies."""
    tag = key[:1]
    if tag == _WAIT:
        if value[0] == _TOMBSTONE_BYTE:
            return [(_expiry_key(_U64.unpack_from(value, 1)[0], EXPIRY_RESOLVED, key[1:]), b"")]
        wait_id, pair, deadline = PendingWait.timer_of(value)
        return [(_timer_key(deadline, wait_id), pair)]
    if tag == _DEDUP:
        return [(_expiry_key(_U64.unpack_from(value)[0], EXPIRY_DEDUP, key[1:]), b"")]
    return []


# Times here are never negative: the wire models bound them (>= 0) and the run loop stamps a
# record without a timestamp with the wall clock.
_u64 = _U64.pack


def _timer_key(deadline: int, wait_id: str) -> bytes:
    return _TIMER + _u64(deadline) + wait_id.encode()


def _expiry_key(expires_at: int, kind: bytes, key: bytes) -> bytes:
    return _EXPIRY + _u64(expires_at) + kind + key


def _body_key(pair: bytes, expires_at: int, seq: int) -> bytes:
    return _BODY + _u64(expires_at) + _u64(seq) + pair


@dataclass(slots=True)
class PendingWait:
    """A registered wait that has not resolved yet."""

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
            ]
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> PendingWait:
        w, r, p, reg, dl, ot, lb, f, c, m = from_json(raw)
        return cls(w, r, p.encode(), reg, dl, ot, lb, f, c, m)

    @staticmethod
    def timer_of(raw: bytes) -> tuple[str, bytes, int]:
        """``(wait_id, pair, deadline)`` of a stored wait, without building it (restore)."""
        fields = from_json(raw)
        return fields[0], fields[2].encode(), fields[4]


@dataclass(slots=True)
class BufferedEvent:
    """An event kept for waits that register later."""

    timestamp: int
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

    def waits_on(self, pair: bytes) -> list[str]:
        raw = self.kv.get(_INDEX + pair)
        return [] if raw is None else from_json(raw)  # a fresh list per call

    def add_wait(self, wait: PendingWait) -> None:
        self.kv.put(_WAIT + wait.wait_id.encode(), wait.to_bytes())
        ids = self.waits_on(wait.pair)
        ids.append(wait.wait_id)
        self._put_list(_INDEX + wait.pair, ids)
        deadline = wait.deadline
        self.kv.put(_timer_key(deadline, wait.wait_id), wait.pair)
        earliest = self.earliest_new_timer
        if earliest is None or deadline < earliest:
            self.earliest_new_timer = deadline

    def remove_wait(self, wait: PendingWait) -> None:
        self.remove_waits(wait.pair, [wait])

    def remove_waits(
        self, pair: bytes, waits: list[PendingWait], pending: list[str] | None = None
    ) -> None:
        """Remove waits pending on ``pair`` (an event resolves them together: one index write).

        ``pending`` is ``waits_on(pair)`` if the caller has just read it (saves reading it
        again). Their ``mark_resolved`` comes after: the tombstone takes the wait's key."""
        gone = set()
        for wait in waits:
            self.kv.delete(_WAIT + wait.wait_id.encode())
            self.kv.delete(_timer_key(wait.deadline, wait.wait_id))
            gone.add(wait.wait_id)
        ids = self.waits_on(pair) if pending is None else pending
        self._put_list(_INDEX + pair, [i for i in ids if i not in gone])

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
        raw = self.kv.get(_EVENTS + pair)
        return [] if raw is None else [BufferedEvent(*item) for item in from_json(raw)]

    def event_body(self, pair: bytes, event: BufferedEvent) -> bytes | None:
        return self.kv.get(_body_key(pair, event.expires_at, event.seq))

    def buffer_event(self, pair: bytes, event: BufferedEvent, body: bytes) -> None:
        # On the hot path: works on the stored [timestamp, expiresAt, seq] triples directly.
        key = _EVENTS + pair
        raw = self.kv.get(key)
        item = [event.timestamp, event.expires_at, event.seq]
        if raw is None:
            items = [item]
        else:
            items = from_json(raw)
            if any(stored[2] == event.seq for stored in items):
                return
            items.append(item)
            last = items[-2]
            if (last[0], last[2]) > (item[0], item[2]):  # arrived out of timestamp order
                items.sort(key=lambda e: (e[0], e[2]))
        self.kv.put(key, to_json(items))
        self.kv.put(_body_key(pair, event.expires_at, event.seq), body)

    def drop_event(self, pair: bytes, seq: int) -> None:
        kept = []
        for event in self.events_of(pair):
            if event.seq == seq:
                self.kv.delete(_body_key(pair, event.expires_at, seq))
            else:
                kept.append(event)
        self._put_events(pair, kept)

    def iter_buffered(self) -> Iterator[tuple[bytes, BufferedEvent]]:
        for key, raw in self.kv.scan(_EVENTS, _EVENTS + _MAX_KEY):
            for item in from_json(raw):
                yield key[1:], BufferedEvent(*item)

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
            self.drop_event(key[17:], _U64.unpack_from(key, 9)[0])
            self.kv.delete(key)  # also if the pair's list no longer names it
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

    def _put_list(self, key: bytes, items: list[str]) -> None:
        if items:
            self.kv.put(key, to_json(items))
        else:
            self.kv.delete(key)

    def _put_events(self, pair: bytes, events: list[BufferedEvent]) -> None:
        if events:
            payload = [[e.timestamp, e.expires_at, e.seq] for e in events]
            self.kv.put(_EVENTS + pair, to_json(payload))
        else:
            self.kv.delete(_EVENTS + pair)
