"""Property tests of the core's invariants over random interleavings (hypothesis).

Whatever the order of registrations, events (with duplicates), cancels, re-registrations and
timer firings (including repeated timer records):

- every registered wait ends with exactly one outcome: all resume commands for a waitId are
  byte-identical, and after a final tick far in the future every wait has one;
- no resume exists for a waitId that was never registered;
- no timeout fires early; a match carries an event of the wait's own name and key;
- the same input on a fresh state yields the same output (determinism).
"""

from __future__ import annotations

import json
from typing import Any

from coreharness import Core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.correlation import CoreSettings, Emit, Source, Target
from processors.kv import MemoryKV
from processors.state import PartitionState

PAIRS = [("paid", "o-1"), ("paid", "o-2"), ("shipped", "o-1")]
WAITS = [f"w{i}" for i in range(6)]
FILTERS = [None, "async.data.v > 2", "async.data.v == event.data.v"]

registration = st.tuples(
    st.just("reg"),
    st.integers(0, len(WAITS) - 1),
    st.sampled_from([1, 3, 10]),
    st.sampled_from([None, "0", "2s", "1h"]),
    st.integers(0, len(FILTERS) - 1),
)
event = st.tuples(
    st.just("event"),
    st.integers(0, len(PAIRS) - 1),
    st.integers(0, 5),
    st.sampled_from([None, "a", "b"]),
    st.sampled_from([None, "1s", "30s"]),
)
cancel = st.tuples(st.just("cancel"), st.integers(0, len(WAITS) - 1))
tick = st.tuples(st.just("tick"), st.integers(0, 4_000))
replay_timers = st.tuples(st.just("replay-timers"))
operations = st.lists(
    st.one_of(registration, event, cancel, tick, replay_timers), min_size=1, max_size=60
)


def _pair_of(wait_index: int) -> tuple[str, str]:
    return PAIRS[wait_index % len(PAIRS)]


def _run(ops: list[tuple[Any, ...]]) -> tuple[list[Emit], dict[str, dict[str, Any]]]:
    core = Core(PartitionState(MemoryKV()), CoreSettings(dedup_window_ms=5_000))
    now = 0
    out: list[Emit] = []
    fired: list[Emit] = []
    registered: dict[str, dict[str, Any]] = {}
    for op in ops:
        now += 1
        kind = op[0]
        if kind == "reg":
            _, w, timeout_s, lookback, f = op
            name, key = _pair_of(w)
            fields: dict[str, Any] = {"timeout": f"{timeout_s}s", "context": {"data": {"v": 3}}}
            if lookback is not None:
                fields["lookback"] = lookback
            if FILTERS[f] is not None:
                fields["if"] = FILTERS[f]
            registered.setdefault(WAITS[w], {"timeout_ms": timeout_s * 1000, "pair": (name, key)})
            out += core.register(WAITS[w], name, key, now, **fields)
        elif kind == "event":
            _, p, value, idem, ttl = op
            name, key = PAIRS[p]
            extra: dict[str, Any] = {"data": {"v": value}}
            if idem is not None:
                extra["idempotencyKey"] = idem
            if ttl is not None:
                extra["ttl"] = ttl
            out += core.event(name, key, now, **extra)
        elif kind == "cancel":
            name, key = _pair_of(op[1])
            out += core.cancel(WAITS[op[1]], name, key, now)
        elif kind == "tick":
            now += op[1]
            timers = core.core.due_timers(core.state, now, 0, 1000)
            fired += timers
            for timer in timers:
                out += core.raw(Source.WAIT_COMMANDS, timer.value or b"", now, timer.key)
        else:  # a crash made the worker write its timer records again
            for timer in fired:
                out += core.raw(Source.WAIT_COMMANDS, timer.value or b"", now, timer.key)
    # Far in the future every pending wait times out.
    now += 10**7
    for timer in core.core.due_timers(core.state, now, 0, 1000):
        out += core.raw(Source.WAIT_COMMANDS, timer.value or b"", now, timer.key)
    return out, registered


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_exactly_one_outcome_per_wait(ops: list[tuple[Any, ...]]) -> None:
    out, registered = _run(ops)
    assert all(e.target in (Target.RESUMES,) for e in out), "no dead letters for valid input"
    by_wait: dict[str, set[bytes]] = {}
    for emit in out:
        resume = json.loads(emit.value or b"")
        by_wait.setdefault(resume["waitId"], set()).add(emit.value or b"")
        info = registered.get(resume["waitId"])
        assert info is not None, f"resume for unknown wait {resume['waitId']}"
        if resume["outcome"] == "timed_out":
            assert resume["resolvedAt"] >= resume["registeredAt"] + info["timeout_ms"]
        if resume["outcome"] == "matched":
            event = resume["event"]
            assert (event["name"], event["correlationKey"]) == info["pair"]
    assert set(by_wait) == set(registered), "every registered wait resolves"
    for wait_id, values in by_wait.items():
        assert len(values) == 1, f"{wait_id} has {len(values)} different outcomes"


@settings(max_examples=100, deadline=None)
@given(operations)
def test_replay_is_deterministic(ops: list[tuple[Any, ...]]) -> None:
    first, _ = _run(ops)
    second, _ = _run(ops)
    assert [e.value for e in first] == [e.value for e in second]
