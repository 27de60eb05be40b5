"""Ordered byte key-value stores: the protocol, an in-memory twin, and a write buffer.

Layers, bottom up (``processors.store`` adds RocksDB as a second ``KV``):

- ``KV`` — an ordered map of bytes to bytes with range scans;
- ``MemoryKV`` — the in-memory twin used by unit tests of the core and the state;
- ``Overlay`` — a read-your-writes buffer over a ``KV``: the processor's per-batch transaction.
  Nothing reaches the store until the owner drains ``Overlay.changes`` into one atomic write.
  A batch the owner has finished but not yet written (``seal``) stays readable under the next
  one's changes until it is written (``committed``) or dropped (``clear``). Scans inside one
  group of keys (``group_scans``: a pair's waits or events) read only that group's buffered
  writes.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator
from itertools import islice
from operator import itemgetter
from typing import Protocol

__all__ = ["KV", "MemoryKV", "Overlay"]


class KV(Protocol):
    """An ordered byte map. ``scan`` yields ``start <= key < stop`` in key order."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]: ...


class MemoryKV:
    """A ``KV`` in a dict plus a sorted key list; for tests and small tools."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        if key not in self._data:
            bisect.insort(self._keys, key)
        self._data[key] = value

    def delete(self, key: bytes) -> None:
        if self._data.pop(key, None) is not None:
            del self._keys[bisect.bisect_left(self._keys, key)]

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        lo = bisect.bisect_left(self._keys, start)
        hi = bisect.bisect_left(self._keys, stop)
        for key in self._keys[lo:hi]:
            yield key, self._data[key]


_DELETED = None
_MISSING = object()
_KEY = itemgetter(0)


class Overlay:
    """Buffers writes over a base ``KV``; reads see the buffered writes first.

    Two layers of writes: ``changes``, the batch in progress, and ``sealed``, the batch before
    it, finished (``seal``) and waiting to be written to the base. Reads see ``changes``, then
    ``sealed``, then the base. ``committed`` says the sealed batch is in the base now.

    With ``cache_limit`` > 0 it also keeps a read cache of committed entries: what was read
    from the base (misses included) and what the owner reported written to it
    (``committed``), values of at most ``cache_value_bytes``. Only valid while the overlay's
    owner is the base's only writer, and writes everything through the overlay; the owner
    calls ``forget`` when the base changes underneath (a restore). The cache is emptied when
    it holds ``cache_limit`` entries, so its memory stays below about ``cache_limit`` ×
    (``cache_value_bytes`` + a key) whatever the state's size.

    A scan walks the buffered writes in its range: all of them, unless the range lies in one
    group (``group_scans``), whose buffered keys the overlay keeps sorted; such a scan costs a
    binary search and the keys it yields. A scan sees writes made to its range while it runs,
    or not: the owner does not write inside a range it is scanning.
    """

    def __init__(self, base: KV, cache_limit: int = 0, cache_value_bytes: int = 512) -> None:
        self.base = base
        self.changes: dict[bytes, bytes | None] = {}
        self.sealed: dict[bytes, bytes | None] = {}
        self.cache: dict[bytes, bytes | None] = {}
        self.cache_limit = cache_limit
        self.cache_value_bytes = cache_value_bytes
        self._base_get = base.get
        # Keys by group (group_scans), sorted: the batch in progress's and the sealed one's.
        self._grouped: frozenset[int] = frozenset()
        self._groups: dict[bytes, list[bytes]] = {}
        self._sealed_groups: dict[bytes, list[bytes]] = {}

    def group_scans(self, tags: bytes) -> None:
        """Keep the buffered keys whose first byte is one of ``tags`` sorted by group. Such a
        key is the tag, a 2-byte big-endian length n, n bytes, then anything: its group is its
        first 3 + n bytes. A scan whose ``start`` and ``stop`` both begin with one group then
        reads only that group's buffered keys."""
        self._grouped = frozenset(tags)
        self._groups, self._sealed_groups = {}, {}
        for layer, groups in ((self.changes, self._groups), (self.sealed, self._sealed_groups)):
            for key in sorted(layer):
                if key[0] in self._grouped:
                    groups.setdefault(key[: 3 + (key[1] << 8 | key[2])], []).append(key)

    def _add_to_group(self, key: bytes) -> None:
        group = key[: 3 + (key[1] << 8 | key[2])]
        keys = self._groups.get(group)
        if keys is None:
            self._groups[group] = [key]
        elif key > keys[-1]:  # the common case: sequence numbers and timestamps go up
            keys.append(key)
        else:
            bisect.insort(keys, key)

    def get(self, key: bytes) -> bytes | None:
        value = self.changes.get(key, _MISSING)
        if value is _MISSING:
            value = self.sealed.get(key, _MISSING)
            if value is _MISSING:
                value = self.cache.get(key, _MISSING)
                if value is _MISSING:
                    value = self._base_get(key)
                    if self.cache_limit and (value is None or len(value) <= self.cache_value_bytes):
                        if len(self.cache) >= self.cache_limit:
                            self.cache.clear()
                        self.cache[key] = value
        return value  # type: ignore[return-value]

    def put(self, key: bytes, value: bytes) -> None:
        changes = self.changes
        if key[0] in self._grouped and key not in changes:
            self._add_to_group(key)
        changes[key] = value

    def delete(self, key: bytes) -> None:
        changes = self.changes
        if key[0] in self._grouped and key not in changes:
            self._add_to_group(key)
        changes[key] = _DELETED

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        if len(start) >= 3 and start[0] in self._grouped:
            end = 3 + (start[1] << 8 | start[2])
            if len(start) >= end and stop[:end] == start[:end]:
                return self._scan_group(start[:end], start, stop)
        return self._scan_all(start, stop)

    def _scan_group(self, group: bytes, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """``scan`` within one group: every key in [start, stop) begins with ``group``."""
        changes, sealed = self.changes, self.sealed
        mine, theirs = self._groups.get(group), self._sealed_groups.get(group)
        if not mine and not theirs:  # nothing buffered in the group
            yield from self.base.scan(start, stop)
            return
        base = (
            item
            for item in self.base.scan(start, stop)
            if item[0] not in changes and item[0] not in sealed
        )
        streams: list[Iterator[tuple[bytes, bytes | None]]] = []
        if mine:
            lo, hi = bisect.bisect_left(mine, start), bisect.bisect_left(mine, stop)
            streams.append((key, changes[key]) for key in islice(mine, lo, hi))
        if theirs:
            lo, hi = bisect.bisect_left(theirs, start), bisect.bisect_left(theirs, stop)
            streams.append(
                (key, sealed[key]) for key in islice(theirs, lo, hi) if key not in changes
            )
        for key, value in heapq.merge(base, *streams, key=_KEY):
            if value is not None:
                yield key, value

    def _scan_all(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        changes = self.changes
        pending = [(k, v) for k, v in changes.items() if start <= k < stop]
        if self.sealed:  # the batch before, where the batch in progress has not written over it
            pending += [
                (k, v) for k, v in self.sealed.items() if start <= k < stop and k not in changes
            ]
        pending.sort(key=lambda item: item[0])
        if not pending:
            yield from self.base.scan(start, stop)
            return
        overridden = {k for k, _ in pending}
        base = ((k, v) for k, v in self.base.scan(start, stop) if k not in overridden)
        for key, value in heapq.merge(base, pending, key=lambda item: item[0]):
            if value is not None:
                yield key, value

    def seal(self) -> None:
        """The batch in progress is finished: its writes become ``sealed``, and the next batch's
        go to a fresh ``changes`` on top of them. The batch sealed before must be committed."""
        if self.sealed:
            raise RuntimeError("the sealed batch before is not committed")
        self.sealed, self.changes = self.changes, {}
        self._sealed_groups, self._groups = self._groups, {}

    def clear(self) -> None:
        """Discard the buffered writes, sealed or not (a rollback)."""
        self.changes.clear()
        self.sealed = {}
        self._groups, self._sealed_groups = {}, {}

    def committed(self) -> None:
        """The owner wrote ``sealed`` to the base: keep its writes as cached reads."""
        sealed, self.sealed = self.sealed, {}
        self._sealed_groups = {}
        if self.cache_limit:
            if len(self.cache) + len(sealed) > self.cache_limit:
                self.cache.clear()
            most = self.cache_value_bytes
            # All of them in one C-level update, then out with the values too big to keep (an
            # older, smaller value of such a key may have been cached).
            big = [key for key, value in sealed.items() if value and len(value) > most]
            self.cache.update(sealed)
            for key in big:
                del self.cache[key]

    def forget(self) -> None:
        """The base changed underneath: drop the buffered writes and the cached reads."""
        self.clear()
        self.cache.clear()
