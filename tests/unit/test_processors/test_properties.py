"""Property tests of the core's invariants over random interleavings (hypothesis).

The generated runs mix registrations (a handful of waitIds over three name/key pairs, random
timeouts and onTimeout, optional lookback, optional filter), events (with and without
idempotency keys, duplicates, TTLs, and an own ``timestamp`` that may lie before or after their
record's), cancels, re-registrations, timer firings at random "now"s from ``due_timers``, and
replays of timer records already processed. Record times never decrease (several records may
share one millisecond).

Properties:

- a reference model of SPEC §2 predicts, record by record, what the core emits;
- every registered wait ends with exactly one outcome: all resume commands for a waitId are
  byte-identical, and after a final tick far in the future every wait has one; no resume
  names a waitId that was never registered; no timeout resolves before its deadline;
- the same input on a fresh state yields byte-identical output (determinism);
- a wait's outcome does not depend on how records from the two input topics interleave.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any

from coreharness import Core
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from waitline.processors.correlation import CoreSettings, Emit, Source, Target
from waitline.processors.kv import MemoryKV
from waitline.processors.state import PartitionState
from waitline.schemas.durations import parse_duration

PAIRS = [("paid", "o-1"), ("paid", "o-2"), ("shipped", "o-1")]
WAITS = [f"run-{i}/step" for i in range(6)]
# Filters and the Python they mean; the registration context is {"data": {"v": 3}}.
FILTERS: list[tuple[str | None, Any]] = [
    (None, lambda v: True),
    ("async.data.v > 2", lambda v: v > 2),
    ("async.data.v == event.data.v", lambda v: v == 3),
]
DEDUP_WINDOW = 5_000
DEFAULT_TTL = 24 * 3_600_000
FAR_FUTURE = 10**7

delays = st.sampled_from([0, 0, 1, 999, 1_000, 2_000])
registration = st.tuples(
    st.just("reg"),
    delays,
    st.integers(0, len(WAITS) - 1),
    st.sampled_from([1, 3, 10]),  # timeout, seconds
    st.sampled_from([None, "0", "2s", "1h"]),  # lookback
    st.integers(0, len(FILTERS) - 1),
    st.sampled_from(["fail", "continue", "cancel"]),
)
event = st.tuples(
    st.just("event"),
    delays,
    st.integers(0, len(PAIRS) - 1),
    st.integers(0, 5),  # data.v
    st.sampled_from([None, "a", "b"]),  # idempotency key
    st.sampled_from([None, "0", "1s", "30s"]),  # ttl
    st.sampled_from([None, 0, -500, 500, -600_000]),  # its own timestamp, from its record time
)
cancel = st.tuples(st.just("cancel"), delays, st.integers(0, len(WAITS) - 1))
tick = st.tuples(st.just("tick"), st.integers(0, 4_000))
replay_timers = st.tuples(st.just("replay-timers"), delays)
purge = st.tuples(st.just("purge"), delays)
# Registrations and events twice as likely as the rest, so that most runs correlate something.
operations = st.lists(
    st.one_of(registration, event, registration, event, cancel, tick, replay_timers, purge),
    min_size=15,
    max_size=60,
)

PROPERTY = settings(
    max_examples=int(os.environ.get("WAITLINE_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _pair_of(wait_index: int) -> tuple[str, str]:
    return PAIRS[wait_index % len(PAIRS)]


# -- the reference model -----------------------------------------------------------------------


@dataclass
class _Wait:
    wait_id: str
    pair: tuple[str, str]
    registered_at: int
    deadline: int
    lookback_ms: int | None
    accepts: Any
    on_timeout: str
    seq: int


@dataclass
class _Event:
    record_time: int
    stamp: int  # its own timestamp (its record's when it has none): data, never a window
    offset: int
    event_id: str
    pair: tuple[str, str]
    expires_at: int
    v: int


@dataclass
class Model:
    """SPEC §2 written as plainly as possible, for one partition and non-decreasing record
    times, which every window is measured in."""

    pending: dict[str, _Wait] = field(default_factory=dict)
    resolved: dict[str, bytes] = field(default_factory=dict)
    buffered: list[_Event] = field(default_factory=list)
    dedup: dict[tuple[str, str], int] = field(default_factory=dict)
    seq: int = 0

    @staticmethod
    def in_lookback(lookback_ms: int | None, registered_at: int, record_time: int) -> bool:
        """An event counts for a wait iff it was appended no earlier than lookback before it."""
        return lookback_ms is None or record_time >= registered_at - lookback_ms


def _resumes(emits: list[Emit]) -> list[dict[str, Any]]:
    assert all(e.target is Target.RESUMES for e in emits), [e.target for e in emits]
    return [json.loads(e.value or b"") for e in emits]


def _stamp(now: int, age: int | None) -> int | None:
    return None if age is None else max(0, now + age)


def _check_event(model: Model, out: list[Emit], now: int, op: tuple[Any, ...], offset: int) -> None:
    _, _, p, v, idem, ttl, age = op
    pair = PAIRS[p]
    stamp = _stamp(now, age)
    stamp = now if stamp is None else stamp
    ttl_ms = DEFAULT_TTL if ttl is None else parse_duration(ttl)
    if idem is not None:
        if model.dedup.get((pair[0], idem), -1) > now:
            assert out == [], "a duplicate inside the dedup window must do nothing"
            return
        model.dedup[(pair[0], idem)] = now + DEDUP_WINDOW
    eligible = sorted(
        (
            w
            for w in model.pending.values()
            if w.pair == pair
            and w.accepts(v)
            and model.in_lookback(w.lookback_ms, w.registered_at, now)
        ),
        key=lambda w: w.seq,
    )
    got = _resumes(out)
    matched = [r["waitId"] for r in got]
    must = [w.wait_id for w in eligible if w.deadline > now]
    may = [w.wait_id for w in eligible]  # an overdue wait whose timer is not in yet: either way
    assert set(must) <= set(matched) <= set(may), (must, matched, may)
    assert matched == [w for w in may if w in matched], "fan-out is in registration order"
    for resume in got:
        assert (resume["outcome"], resume["action"]) == ("matched", "continue")
        assert resume["event"]["eventId"] == f"e{offset}" and resume["resolvedAt"] == now
        assert resume["event"]["timestamp"] == stamp
        wait = model.pending.pop(resume["waitId"])
        assert resume["registeredAt"] == wait.registered_at
    for emit, resume in zip(out, got, strict=True):
        model.resolved[resume["waitId"]] = emit.value or b""
    if ttl_ms > 0:
        model.buffered.append(_Event(now, stamp, offset, f"e{offset}", pair, now + ttl_ms, v))


def _check_registration(model: Model, out: list[Emit], now: int, op: tuple[Any, ...]) -> None:
    _, _, w, timeout_s, lookback, f, on_timeout = op
    wait_id, pair = WAITS[w], _pair_of(w)
    if wait_id in model.pending:
        assert out == [], "re-registering a pending wait is a no-op"
        return
    if wait_id in model.resolved:
        assert [e.value for e in out] == [model.resolved[wait_id]], "re-emit, byte-identical"
        return
    lookback_ms = None if lookback is None else parse_duration(lookback)
    accepts = FILTERS[f][1]
    available = sorted(
        (
            e
            for e in model.buffered
            if e.pair == pair
            and e.expires_at > now
            and model.in_lookback(lookback_ms, now, e.record_time)
            and accepts(e.v)
        ),
        key=lambda e: (e.record_time, e.offset),
    )
    if not available:
        assert out == [], "no available event: the wait is pending"
        model.seq += 1
        model.pending[wait_id] = _Wait(
            wait_id, pair, now, now + timeout_s * 1000, lookback_ms, accepts, on_timeout, model.seq
        )
        return
    (resume,) = _resumes(out)
    assert (resume["waitId"], resume["outcome"]) == (wait_id, "matched")
    assert resume["event"]["eventId"] == available[0].event_id, "the oldest available event"
    assert resume["event"]["timestamp"] == available[0].stamp
    assert resume["registeredAt"] == resume["resolvedAt"] == now
    model.resolved[wait_id] = out[0].value or b""


def _check_cancel(model: Model, out: list[Emit], now: int, wait_id: str) -> None:
    if wait_id not in model.pending:
        assert out == [], "cancelling a wait that is not pending is a no-op"
        return
    (resume,) = _resumes(out)
    assert (resume["waitId"], resume["outcome"], resume["action"]) == (
        wait_id,
        "cancelled",
        "cancel",
    )
    del model.pending[wait_id]
    model.resolved[wait_id] = out[0].value or b""


def _check_timer(model: Model, out: list[Emit], now: int, timer: dict[str, Any]) -> None:
    wait = model.pending.get(timer["waitId"])
    if wait is None or wait.deadline != timer["deadline"]:
        assert out == [], "a stale timer is a no-op"
        return
    assert now >= wait.deadline, "a timer is never processed before its deadline"
    (resume,) = _resumes(out)
    assert (resume["waitId"], resume["outcome"], resume["action"]) == (
        wait.wait_id,
        "timed_out",
        wait.on_timeout,
    )
    assert resume["event"] is None and resume["resolvedAt"] == now
    del model.pending[wait.wait_id]
    model.resolved[wait.wait_id] = out[0].value or b""


def _check_state(model: Model, core: Core) -> None:
    """What the core keeps is what the model keeps: pending waits and buffered events."""
    assert {w.wait_id for w in core.state.iter_waits()} == set(model.pending)
    kept = sorted((pair, e.seq) for pair, e in core.state.iter_buffered())
    assert kept == sorted(("|".join(e.pair).encode(), e.offset) for e in model.buffered)


# -- running a generated scenario ----------------------------------------------------------------


@dataclass
class Run:
    emits: list[Emit] = field(default_factory=list)
    registered: dict[str, int] = field(default_factory=dict)  # waitId -> timeout ms (first)


def _run(ops: list[tuple[Any, ...]], model: Model | None = None) -> Run:
    core = Core(PartitionState(MemoryKV()), CoreSettings(dedup_window_ms=DEDUP_WINDOW))
    run = Run()
    fired: list[Emit] = []
    now = 0

    def fire(at: int) -> None:
        timers = core.core.due_timers(core.state, at, 0, 1000)
        if model is not None:
            due = sorted(
                (w.deadline, w.wait_id) for w in model.pending.values() if w.deadline <= at
            )
            got = [
                (json.loads(t.value or b"")["deadline"], json.loads(t.value or b"")["waitId"])
                for t in timers
            ]
            assert got == due, "due_timers: every pending wait past its deadline, earliest first"
        fired.extend(timers)
        for timer in timers:
            replay(timer, at)

    def replay(timer: Emit, at: int) -> None:
        out = core.raw(Source.WAIT_COMMANDS, timer.value or b"", at, timer.key)
        if model is not None:
            _check_timer(model, out, at, json.loads(timer.value or b""))
        run.emits.extend(out)

    for op in ops:
        kind = op[0]
        now += op[1]
        if kind == "reg":
            _, _, w, timeout_s, lookback, f, on_timeout = op
            name, key = _pair_of(w)
            fields: dict[str, Any] = {
                "timeout": f"{timeout_s}s",
                "onTimeout": on_timeout,
                "context": {"data": {"v": 3}},
            }
            if lookback is not None:
                fields["lookback"] = lookback
            if FILTERS[f][0] is not None:
                fields["if"] = FILTERS[f][0]
            run.registered.setdefault(WAITS[w], timeout_s * 1000)
            out = core.register(WAITS[w], name, key, now, **fields)
            if model is not None:
                _check_registration(model, out, now, op)
        elif kind == "event":
            _, _, p, value, idem, ttl, age = op
            name, key = PAIRS[p]
            extra: dict[str, Any] = {"data": {"v": value}}
            if (stamp := _stamp(now, age)) is not None:
                extra["timestamp"] = stamp
            if idem is not None:
                extra["idempotencyKey"] = idem
            if ttl is not None:
                extra["ttl"] = ttl
            out = core.event(name, key, now, **extra)
            if model is not None:
                _check_event(model, out, now, op, core.offset)
        elif kind == "cancel":
            name, key = _pair_of(op[2])
            out = core.cancel(WAITS[op[2]], name, key, now)
            if model is not None:
                _check_cancel(model, out, now, WAITS[op[2]])
        elif kind == "tick":
            fire(now)
            continue
        elif kind == "purge":
            core.core.purge(core.state, now, 10_000)
            if model is not None:
                model.buffered = [e for e in model.buffered if e.expires_at > now]
            continue
        else:  # a crash made the worker write its timer records again
            for timer in list(fired):
                replay(timer, now)
            continue
        run.emits.extend(out)
        if model is not None:
            _check_state(model, core)
    fire(now + FAR_FUTURE)  # far in the future every pending wait times out
    if model is not None:
        assert model.pending == {}
    return run


# -- properties ----------------------------------------------------------------------------------


@PROPERTY
@given(operations)
def test_the_core_agrees_with_the_reference_model(ops: list[tuple[Any, ...]]) -> None:
    _run(ops, Model())


@PROPERTY
@given(operations)
def test_exactly_one_outcome_per_wait(ops: list[tuple[Any, ...]]) -> None:
    run = _run(ops)
    assert all(e.target is Target.RESUMES for e in run.emits), "valid input: no dead letters"
    by_wait: dict[str, set[bytes]] = {}
    for emit in run.emits:
        resume = json.loads(emit.value or b"")
        wait_id = resume["waitId"]
        assert wait_id in run.registered, f"resume for unknown wait {wait_id}"
        assert emit.key == resume["runId"].encode()
        by_wait.setdefault(wait_id, set()).add(emit.value or b"")
        if resume["outcome"] == "timed_out":
            deadline = resume["registeredAt"] + run.registered[wait_id]
            assert resume["resolvedAt"] >= deadline, "a timeout fired early"
    assert set(by_wait) == set(run.registered), "every registered wait resolves"
    for wait_id, values in by_wait.items():
        assert len(values) == 1, f"{wait_id} has {len(values)} different outcomes"


@PROPERTY
@given(operations)
def test_replay_from_scratch_is_deterministic(ops: list[tuple[Any, ...]]) -> None:
    first, second = _run(ops), _run(ops)
    assert [(e.target, e.key, e.value, e.partition) for e in first.emits] == [
        (e.target, e.key, e.value, e.partition) for e in second.emits
    ]


# -- cross-topic interleaving -------------------------------------------------------------------

INTERLEAVINGS = ("ERT", "RET", "RTE")  # R registration, T its timer record, E the event


@PROPERTY
@given(
    t_reg=st.integers(0, 20_000),  # the registration's record time
    t_event=st.integers(0, 20_000),  # the event's record time
    # The event's own timestamp against its record time: none, a producer clock a little
    # behind or ahead, a relayed event from long ago.
    stamp_age=st.sampled_from([None, 0, 500, -500, 3_000, 15_000, 600_000]),
    timeout=st.sampled_from(["1s", "5s", "1h"]),
    lookback=st.sampled_from([None, "0", "2s", "10s"]),
    ttl=st.sampled_from([None, "2s", "1h"]),  # not "0": kept for no one, it is order-bound
    timer_lag=st.integers(0, 3_000),  # how long after the deadline the timer record was written
)
def test_outcome_does_not_depend_on_cross_topic_order(
    t_reg: int,
    t_event: int,
    stamp_age: int | None,
    timeout: str,
    lookback: str | None,
    ttl: str | None,
    timer_lag: int,
) -> None:
    """§2.6: replaying the input topics replays the same decisions.

    Events and wait commands are two topics: a replay (or a lagging consumer) may interleave
    them differently, while each record keeps its own record time. A registration and its timer
    record share a topic partition, so they keep their order; the event may come before the
    registration or between the two, and must resolve the wait the same way in both cases:
    the way the record times say (lookback, TTL and deadline all counted in them), whatever
    the event's own ``timestamp``, which the resume carries as sent.

    An event processed after the timer record cannot match any more (the first outcome won),
    so that position is compared only for an event appended at or after the deadline, which
    must not match in any position.
    """
    deadline = t_reg + parse_duration(timeout)
    t_timer = deadline + timer_lag
    reg: dict[str, Any] = {"timeout": timeout}
    if lookback is not None:
        reg["lookback"] = lookback
    ev: dict[str, Any] = {"eventId": "e"}
    if stamp_age is not None:
        ev["timestamp"] = max(0, t_event - stamp_age)
    if ttl is not None:
        ev["ttl"] = ttl
    timer = json.dumps(
        {"type": "timer", "waitId": "w", "name": "n", "correlationKey": "k", "deadline": deadline}
    ).encode()

    expires_at = t_event + (DEFAULT_TTL if ttl is None else parse_duration(ttl))
    lookback_ms = None if lookback is None else parse_duration(lookback)
    matches = (
        expires_at > t_reg and Model.in_lookback(lookback_ms, t_reg, t_event) and t_event < deadline
    )
    expected = [("matched", "e")] if matches else [("timed_out", None)]
    sequences = ["ERT", "RET"] + (["RTE"] if t_event >= deadline else [])
    outcomes: dict[str, list[tuple[str, str | None]]] = {}
    for sequence in sequences:
        core = Core(PartitionState(MemoryKV()))
        out: list[Emit] = []
        for step in sequence:
            if step == "R":
                out += core.register("w", "n", "k", t_reg, **reg)
            elif step == "E":
                out += core.event("n", "k", t_event, **ev)
            else:
                out += core.raw(Source.WAIT_COMMANDS, timer, t_timer, b"n|k")
        got = _resumes(out)
        outcomes[sequence] = [(r["outcome"], (r["event"] or {}).get("eventId")) for r in got]
        for resume in got:
            if resume["event"] is not None:
                assert resume["event"]["timestamp"] == ev.get("timestamp", t_event)
    note(f"outcomes by processing order: {outcomes}")
    assert all(got == expected for got in outcomes.values()), (expected, outcomes)


def test_interleavings_cover_every_position_of_the_event() -> None:
    # The registration precedes its timer; the event goes before, between or after them.
    positions = {"".join(p) for p in itertools.permutations("RET") if p.index("R") < p.index("T")}
    assert positions == set(INTERLEAVINGS)
