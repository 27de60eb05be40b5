"""The replay's core: the live rules, minus what the live run wrote to the input topics."""

from __future__ import annotations

import json

from waitline.processors.correlation import CoreSettings, Correlator, InputRecord, Source, Target
from waitline.processors.kv import MemoryKV
from waitline.processors.state import PartitionState
from waitline.replaycore import ReplayCorrelator
from waitline.schemas.keys import make_key, partition_for

PARTITIONS = 8
T0 = 1_800_000_000_000


def _record(
    source: Source, body: dict[str, object], ts: int, partition: int | None = None, offset: int = 0
) -> InputRecord:
    key = make_key(str(body["name"]), str(body["correlationKey"]))
    home = partition_for(key, PARTITIONS)
    return InputRecord(
        source, key, json.dumps(body).encode(), ts, home if partition is None else partition, offset
    )


def _registration(wait_id: str, key: str, timeout: str = "1s") -> dict[str, object]:
    return {"waitId": wait_id, "runId": "r", "name": "n", "correlationKey": key, "timeout": timeout}


def test_fires_no_timers_but_applies_the_logged_ones() -> None:
    core = ReplayCorrelator(CoreSettings(), PARTITIONS)
    state = PartitionState(MemoryKV())
    assert core.process(state, _record(Source.WAIT_COMMANDS, _registration("w", "k"), T0)) == []
    assert core.due_timers(state, T0 + 60_000, 0, 100) == []
    # The timer record the live worker wrote is in the log: it times the wait out.
    live = Correlator(CoreSettings())
    (timer,) = live.due_timers(state, T0 + 60_000, 0, 100)
    assert timer.target is Target.WAIT_COMMANDS and timer.value is not None
    body = json.loads(timer.value)
    (resume,) = core.process(state, _record(Source.WAIT_COMMANDS, body, T0 + 1_000))
    assert json.loads(resume.value or b"")["outcome"] == "timed_out"


def test_a_misrouted_record_is_left_to_its_forwarded_copy() -> None:
    core = ReplayCorrelator(CoreSettings(), PARTITIONS)
    state = PartitionState(MemoryKV())
    event = {"eventId": "e", "name": "n", "correlationKey": "k"}
    home = partition_for(make_key("n", "k"), PARTITIONS)
    misrouted = _record(Source.EVENTS, event, T0, partition=(home + 1) % PARTITIONS)
    assert core.process(state, misrouted) == []
    assert core.skipped_misrouted == 1
    assert list(state.iter_buffered()) == []  # the live worker forwarded it, applied nothing
    core.process(state, _record(Source.EVENTS, event, T0, offset=1))  # the forwarded copy
    assert len(list(state.iter_buffered())) == 1


def test_a_misrouted_record_too_large_to_forward_is_dead_lettered_as_live() -> None:
    core = ReplayCorrelator(CoreSettings(max_record_bytes=100), PARTITIONS)
    state = PartitionState(MemoryKV())
    event = {"eventId": "e", "name": "n", "correlationKey": "k", "data": {"x": "y" * 200}}
    home = partition_for(make_key("n", "k"), PARTITIONS)
    emits = core.process(state, _record(Source.EVENTS, event, T0, partition=(home + 1) % 8))
    assert [emit.target for emit in emits] == [Target.DEAD_LETTERS]
    assert core.skipped_misrouted == 0


def test_purges_by_the_record_time_reached() -> None:
    core = ReplayCorrelator(CoreSettings(), PARTITIONS)
    state = PartitionState(MemoryKV())
    assert core.purge(state, T0 * 2, 100) == 0  # nothing applied yet: nothing to go by
    event = {"eventId": "e", "name": "n", "correlationKey": "k", "ttl": "1s"}
    core.process(state, _record(Source.EVENTS, event, T0))
    # The wall clock is far past the event's expiry; the replay has reached T0 only.
    assert core.purge(state, T0 * 2, 100) == 0
    later = {"eventId": "e2", "name": "n", "correlationKey": "other"}
    core.process(state, _record(Source.EVENTS, later, T0 + 5_000))
    assert core.purge(state, T0 * 2, 100) == 1
