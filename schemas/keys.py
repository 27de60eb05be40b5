"""The Kafka record key of events and wait commands — defined here once.

The key of every record on the ``events`` and ``wait-commands`` topics is::

    UTF-8( name + "|" + correlationKey )

e.g. ``email.verified|user-42``. Names may not contain ``|``; correlation keys may contain
anything, so the key splits unambiguously at its first ``|``.

Both topics must route a key to the same partition number. waitline's own producers use the
murmur2 partitioner that the Java client uses by default (``partitioner=murmur2_random`` in
librdkafka), and :func:`partition_for` implements the same function, so the processor can
check where a record landed. Producers in other languages should use murmur2 too; a record
that lands on another partition is not lost: the processor forwards it to the right one.
"""

from __future__ import annotations

import struct

__all__ = ["KEY_SEPARATOR", "make_key", "murmur2", "partition_for", "split_key"]

KEY_SEPARATOR = "|"


def make_key(name: str, correlation_key: str) -> bytes:
    """The record key for a (name, correlationKey) pair."""
    return f"{name}{KEY_SEPARATOR}{correlation_key}".encode()


def split_key(key: bytes) -> tuple[str, str]:
    """Inverse of :func:`make_key`; raise ValueError on a key without the separator."""
    name, sep, correlation_key = key.decode().partition(KEY_SEPARATOR)
    if not sep:
        raise ValueError(f"key {key!r} has no {KEY_SEPARATOR!r} between name and correlation key")
    return name, correlation_key


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (the Java client's ``Utils.murmur2``), as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for k in struct.unpack_from(f"<{length4}I", data):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    extra = length % 4
    tail = length4 * 4
    if extra == 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition the Java default partitioner (and librdkafka's murmur2) picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
