"""The size limits of what waitline reads and writes, defined here once.

Every record waitline writes is derived from one it read, so one setting bounds them all: the
accepted input size ``max_record_bytes`` (``WAITLINE_MAX_RECORD_BYTES``, 1 MiB by default).

- An input record (key, value and headers together) over ``max_record_bytes`` is not processed:
  it goes to the dead-letter topic as a reference (its topic, partition, offset, size and
  SHA-256), not as a copy.
- A registration's ``metadata`` and ``context`` may each be at most ``MAX_METADATA_BYTES`` and
  ``MAX_CONTEXT_BYTES`` (64 KiB) of JSON; a larger one is rejected.
- An ``if`` expression reads at most ``MAX_FILTER_INPUT_BYTES`` (4 KiB) of the context's fields
  it names (else the registration is rejected) and as much of an event's (else that event is no
  match for it): what bounds an evaluation's cost (``processors.filters``).
- So the largest record waitline writes is a resume carrying an event of the largest size plus
  the largest metadata (or the changelog record that keeps it): at most
  :func:`output_bytes`. The producer's ``message.max.bytes`` is :func:`producer_max_bytes`,
  which adds room for the key, headers and the record batch around it; every topic's
  ``max.message.bytes`` in topics.yaml must be at least that (the worker checks it at start).
- A dead-letter reason is cut to ``MAX_REASON_CHARS`` characters.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MAX_CONTEXT_BYTES",
    "MAX_FILTER_INPUT_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_REASON_CHARS",
    "output_bytes",
    "producer_max_bytes",
    "record_size",
]

MAX_METADATA_BYTES = 65_536
MAX_CONTEXT_BYTES = 65_536
# The most JSON an ``if`` expression reads of an event, and of a context (the fields it names,
# together): what bounds an evaluation's cost (processors.filters).
MAX_FILTER_INPUT_BYTES = 4_096
MAX_REASON_CHARS = 1_000

# Beyond the event it carries, a resume holds the metadata (at most 64 KiB), two identifiers of
# at most 512 characters (6 bytes each when escaped), an error of at most MAX_REASON_CHARS and a
# few fixed fields: 128 KiB is more than all of that together.
_RESUME_OVERHEAD = 131_072
# A record's key (a changelog key holds a wait id or a pair, each a few KiB at most), its
# headers and the record batch that frames it.
_FRAME_OVERHEAD = 65_536


def output_bytes(max_record_bytes: int) -> int:
    """The largest value waitline writes when it accepts inputs of ``max_record_bytes``."""
    return max_record_bytes + _RESUME_OVERHEAD


def producer_max_bytes(max_record_bytes: int) -> int:
    """librdkafka's ``message.max.bytes`` for waitline's producers."""
    return output_bytes(max_record_bytes) + _FRAME_OVERHEAD


# A record header's framing (the varints of its name's and value's lengths), rounded up.
_HEADER_OVERHEAD = 16


def record_size(key: bytes | None, value: bytes | None, headers: Any = ()) -> int:
    """A record's size as the limits count it: key, value and headers (name, value, framing)."""
    size = len(value or b"")
    if key is not None:
        size += len(key)
    if headers:
        size += sum(len(name.encode()) + len(v or b"") + _HEADER_OVERHEAD for name, v in headers)
    return size
