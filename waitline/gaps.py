"""Reading a partition of ``resumes`` again where its offsets jump, once per gap.

On the embedded broker (Tansu 0.6.0) a live consumer was seen to miss a whole produce batch of
a partition that two producers write at once, while a reader starting later saw it
(docs/embedded-broker.md). So the SDK's readers of ``resumes`` check that each partition's
offsets follow on; at a jump they seek back to the first missing offset and read again. A gap
that shows again at the same offset is real (transaction markers, aborted records under
read_committed, retention) and is let through.

The worker has the same check for its input topics; the SDK keeps its own copy so that it
depends on nothing of the processor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from confluent_kafka import Message, TopicPartition

__all__ = ["OffsetGaps"]

log = logging.getLogger("waitline.gaps")


class OffsetGaps:
    """Per (topic, partition): the offset the next record should have, and the gap last read
    again. ``seek`` moves the consumer (``Consumer.seek``)."""

    def __init__(self, seek: Callable[[TopicPartition], None]) -> None:
        self.seek = seek
        self.reread = 0  # gaps read again
        self.recovered = 0  # ... whose records came on the second read (a fetch skipped them)
        self.next_offset: dict[tuple[str, int], int] = {}
        self.checked: dict[tuple[str, int], int] = {}

    def admit(self, msg: Message) -> bool:
        """Whether to take ``msg``; False after seeking back to records a fetch skipped (the
        partition's records after ``msg`` that are already fetched come again too)."""
        return self.admit_at(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)

    def admit_at(self, topic: str, partition: int, offset: int) -> bool:
        """``admit`` for the record at ``offset`` of ``topic``'s ``partition``."""
        where = (topic, partition)
        want = self.next_offset.get(where, offset)
        if offset != want:
            if offset > want and self.checked.get(where) != want:
                self.checked[where] = want
                self.reread += 1
                log.debug("%s[%d]: offset %d follows %d; reading again", *where, offset, want - 1)
                self.seek(TopicPartition(topic, partition, want))
                return False
        elif self.checked.get(where) == offset:
            del self.checked[where]
            self.recovered += 1
            log.warning(
                "%s[%d]: records from offset %d were missing from a fetch and came on reading "
                "again",
                *where,
                offset,
            )
        self.next_offset[where] = offset + 1
        return True

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions (re)assigned or revoked: where they continue is not known here."""
        for tp in partitions:
            self.next_offset.pop((tp.topic, tp.partition), None)
            self.checked.pop((tp.topic, tp.partition), None)
