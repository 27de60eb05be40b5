"""What every runner does with resume commands: parse them, skip repeats, batch the commits.

The synchronous ``Runner``, the asyncio ``AsyncRunner`` and the Faust helpers share these, so
they behave alike:

- ``parse_resume``: a record that is not a valid resume command is skipped (``None``);
- ``SeenResumes``: the ``resumeId``\\s seen last, in a bounded LRU, so a repeat (a resume
  re-published after a worker's crash, or read again after a rebalance) is handed on once;
- ``OffsetCommits``: the offsets handled since the last commit, committed every
  ``COMMIT_EVERY`` records or ``COMMIT_INTERVAL`` seconds, whichever comes first, and at
  once for partitions being revoked and when the runner stops.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from confluent_kafka import TopicPartition
from pydantic import ValidationError

from waitline.schemas.models import ResumeCommand

__all__ = [
    "COMMIT_EVERY",
    "COMMIT_INTERVAL",
    "REMEMBER",
    "OffsetCommits",
    "SeenResumes",
    "parse_resume",
]

REMEMBER = 100_000
"""How many ``resumeId``\\s a runner remembers by default: about 18 MB (a 36-character id
and its LRU entry take ~180 bytes)."""

COMMIT_EVERY = 500
"""A runner commits after this many records handled since its last commit..."""

COMMIT_INTERVAL = 1.0
"""... or this many seconds after it, whichever comes first."""


def parse_resume(raw: bytes | None) -> ResumeCommand | None:
    """The resume command in a record value, or ``None`` if it holds none."""
    if not raw:
        return None
    try:
        return ResumeCommand.model_validate_json(raw)
    except ValidationError:
        return None


class SeenResumes:
    """The ``size`` ``resumeId``\\s seen most recently (an LRU): a repeat is recognised while
    its id is among them. A repeat comes from a worker that re-published a resume after a
    crash, or from records read again after a rebalance, both soon after the first copy."""

    def __init__(self, size: int = REMEMBER) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size}")
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, resume_id: object) -> bool:
        return resume_id in self._ids

    def add(self, resume_id: str) -> None:
        """Remember ``resume_id`` as the most recent; the oldest beyond ``size`` is forgotten."""
        self._ids[resume_id] = None
        self._ids.move_to_end(resume_id)
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def first_time(self, resume_id: str) -> bool:
        """Whether ``resume_id`` is new; remembers it either way (as the most recent)."""
        new = resume_id not in self._ids
        self.add(resume_id)
        return new

    def __len__(self) -> int:
        return len(self._ids)


class OffsetCommits:
    """The offsets handled since the last commit, and when to commit them.

    ``handled`` records that a record is done with; ``due`` says whether ``every`` records were
    handled since the last commit or ``interval`` seconds passed with some handled; ``take``
    hands over the offsets to commit (the next offset to read, per partition) and starts a new
    batch. ``clock`` (default ``time.monotonic``) is injected for tests.
    """

    def __init__(
        self,
        every: int = COMMIT_EVERY,
        interval: float = COMMIT_INTERVAL,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if every < 1 or interval < 0:
            raise ValueError("commit every >= 1 records and interval >= 0 seconds")
        self.every = every
        self.interval = interval
        self._clock = clock or time.monotonic
        self._next: dict[tuple[str, int], int] = {}
        self._count = 0
        self._since = self._clock()

    def handled(self, topic: str, partition: int, offset: int) -> None:
        """The record at ``offset`` is done with (handled, or skipped as a repeat or invalid)."""
        self._next[topic, partition] = offset + 1
        self._count += 1

    @property
    def pending(self) -> int:
        """Records handled since the last commit."""
        return self._count

    def due(self) -> bool:
        """Whether to commit now."""
        if not self._next:
            return False
        return self._count >= self.every or self._clock() - self._since >= self.interval

    def take(self, partitions: Iterable[TopicPartition] | None = None) -> list[TopicPartition]:
        """The offsets to commit, of every partition (``None``) or of ``partitions`` only, and
        forget them here."""
        if partitions is None:
            taken = [TopicPartition(t, p, o) for (t, p), o in sorted(self._next.items())]
            self._next.clear()
            self._count = 0
            self._since = self._clock()
            return taken
        taken = []
        for tp in partitions:
            offset = self._next.pop((tp.topic, tp.partition), None)
            if offset is not None:
                taken.append(TopicPartition(tp.topic, tp.partition, offset))
        if not self._next:
            self._count = 0
        return taken

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget the handled offsets of ``partitions`` without committing them (lost)."""
        self.take(partitions)
