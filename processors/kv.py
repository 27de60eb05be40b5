"""Ordered byte key-value stores: the protocol, an in-memory twin, and a write buffer.

Layers, bottom up (``processors.store`` adds RocksDB as a second ``KV``):

- ``KV`` — an ordered map of bytes to bytes with range scans;
- ``MemoryKV`` — the in-memory twin used by unit tests of the core and the state;
- ``Overlay`` — a read-your-writes buffer over a ``KV``: the processor's per-batch transaction.
  Nothing reaches the store until the owner drains ``Overlay.changes`` into one atomic write.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator
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


class Overlay:
    """Buffers writes over a base ``KV``; reads see the buffered writes first."""

    def __init__(self, base: KV) -> None:
        self.base = base
        self.changes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.changes:
            return self.changes[key]
        return self.base.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.changes[key] = value

    def delete(self, key: bytes) -> None:
        self.changes[key] = _DELETED

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        pending = sorted((k, v) for k, v in self.changes.items() if start <= k < stop)
        if not pending:
            yield from self.base.scan(start, stop)
            return
        overridden = {k for k, _ in pending}
        base = ((k, v) for k, v in self.base.scan(start, stop) if k not in overridden)
        for key, value in heapq.merge(base, pending, key=lambda item: item[0]):
            if value is not None:
                yield key, value

    def clear(self) -> None:
        self.changes.clear()
