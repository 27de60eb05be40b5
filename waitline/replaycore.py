"""The correlation core of a replay (``waitline.replay``): the live rules, minus what the live
run wrote to the input topics.

- No timers of its own (``due_timers`` is empty): a wait times out when the replay reaches the
  timer record the live worker wrote, so outcomes and resume times are the live ones.
- A record a producer wrote to another partition than its pair's is dropped when the live
  worker forwarded it (it was not over the record limit): its forwarded copy is in the log, and
  is applied where the live worker applied it. The run loop forwards such a record itself
  unless its ``RuntimeConfig`` limit is 0, which the replay sets so that every record reaches
  this core.
- Expired state is purged by the record time the partition has reached, not the wall clock, as
  the live worker did when it read those records.
"""

from __future__ import annotations

from waitline.processors.correlation import CoreSettings, Correlator, Emit, InputRecord
from waitline.processors.limits import record_size
from waitline.processors.state import PartitionState
from waitline.schemas.keys import partition_for

__all__ = ["ReplayCorrelator"]


class ReplayCorrelator(Correlator):
    """The correlation core for a replay: the live rules, minus what the live run wrote to the
    input topics (module docstring)."""

    def __init__(self, settings: CoreSettings, partitions: int) -> None:
        super().__init__(settings)
        self.partitions = partitions
        self.skipped_misrouted = 0
        self._partition_of: dict[bytes, int] = {}
        self._reached: dict[int, int] = {}  # id(state) -> latest record time applied to it

    def process(self, state: PartitionState, record: InputRecord) -> list[Emit]:
        key = record.key
        if key is not None:
            target = self._partition_of.get(key)
            if target is None:
                if len(self._partition_of) >= 200_000:
                    self._partition_of.clear()
                target = self._partition_of[key] = partition_for(key, self.partitions)
            if (
                target != record.partition
                and record_size(key, record.value, record.headers) <= self.settings.max_record_bytes
            ):
                self.skipped_misrouted += 1  # the live worker forwarded it; the copy follows
                return []
        reached = self._reached.get(id(state), 0)
        if record.timestamp > reached:
            self._reached[id(state)] = record.timestamp
        return super().process(state, record)

    def due_timers(
        self, state: PartitionState, now: int, partition: int, limit: int, since: int = 0
    ) -> list[Emit]:
        return []  # timeouts come from the live timer records in the log

    def purge(self, state: PartitionState, now: int, limit: int) -> int:
        reached = self._reached.get(id(state))
        if reached is None:
            return 0
        return super().purge(state, min(now, reached), limit)
