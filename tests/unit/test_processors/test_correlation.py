"""SPEC §2, rule by rule, against the pure core (no Kafka, no RocksDB).

"Now" is always the record's timestamp: the tests pass it explicitly and never sleep.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from coreharness import Core, dead_letters, resumes
from pydantic import ValidationError

from waitline.processors.correlation import (
    HEADER_REASON,
    HEADER_SOURCE,
    CoreSettings,
    Emit,
    InputRecord,
    Source,
    Target,
    _resume_json,
    _validate_event,
    _wire_event,
    resume_id_for,
)
from waitline.processors.kv import MemoryKV
from waitline.processors.state import PartitionState
from waitline.schemas.keys import make_key
from waitline.schemas.models import MAX_EPOCH_MS, Event, ResumeCommand

S = 1000  # one second in ms
H = 3600 * S


def _reason(emit: Emit) -> str:
    return dict(emit.headers)[HEADER_REASON].decode()


def _outcomes(emits: list[Emit]) -> list[tuple[str, str, str]]:
    return [(r["waitId"], r["outcome"], r["action"]) for r in resumes(emits)]


# -- §2.1 correlation --------------------------------------------------------------------------


def test_event_after_wait_matches(core: Core) -> None:
    assert core.register("w1", "paid", "o-1", 0, metadata={"step": 2}) == []
    out = core.event("paid", "o-1", 5 * S, data={"amount": 3}, eventId="e-7")
    assert [(e.target, e.key) for e in out] == [(Target.RESUMES, b"run-w1")]  # keyed by runId
    (resume,) = resumes(out)
    assert (resume["waitId"], resume["runId"], resume["outcome"], resume["action"]) == (
        "w1",
        "run-w1",
        "matched",
        "continue",
    )
    assert resume["event"]["eventId"] == "e-7" and resume["event"]["data"] == {"amount": 3}
    assert resume["event"]["timestamp"] == 5 * S  # the record time when the body has none
    assert resume["metadata"] == {"step": 2} and resume["error"] is None
    assert (resume["registeredAt"], resume["resolvedAt"]) == (0, 5 * S)
    assert resume["resumeId"] == resume_id_for("w1", 0)


def test_matching_is_exact_on_name_and_key(core: Core) -> None:
    core.register("w1", "paid", "o-1", 0)
    assert core.event("paid", "o-2", S) == []
    assert core.event("refunded", "o-1", S) == []
    assert core.event("paid", "O-1", S) == []  # case-sensitive
    assert core.event("paid", "o-1 ", S) == []
    assert _outcomes(core.event("paid", "o-1", 2 * S)) == [("w1", "matched", "continue")]


def test_a_matched_wait_is_gone(core: Core) -> None:
    core.register("w1", "paid", "o", 0)
    core.event("paid", "o", S)
    assert core.event("paid", "o", 2 * S) == []  # resolves once
    assert core.state.get_wait("w1") is None and core.state.waits_on(b"paid|o") == []
    assert core.core.due_timers(core.state, 10 * H, 0, 10) == []  # and its timer with it


# -- §2.2 fan-out ------------------------------------------------------------------------------


def test_fan_out_in_registration_order(core: Core) -> None:
    for i in (3, 1, 2):
        core.register(f"w{i}", "deploy", "svc", i)
    out = resumes(core.event("deploy", "svc", 10 * S, eventId="e"))
    assert [r["waitId"] for r in out] == ["w3", "w1", "w2"]
    assert {r["event"]["eventId"] for r in out} == {"e"}


def test_two_hundred_keys_each_resumed_by_its_own_event(core: Core) -> None:
    for i in range(200):
        core.register(f"w{i}", "verified", f"k{i}", i)
    for i in reversed(range(200)):
        out = resumes(core.event("verified", f"k{i}", S + i, data={"i": i}))
        assert [(r["waitId"], r["event"]["data"]["i"]) for r in out] == [(f"w{i}", i)]
    assert list(core.state.iter_waits()) == []


# -- §2.4 early events, TTL and lookback -------------------------------------------------------


def test_event_before_wait_is_buffered(core: Core) -> None:
    assert core.event("clicked", "u", 0, eventId="early") == []
    out = resumes(core.register("w1", "clicked", "u", 10 * S))
    assert out[0]["event"]["eventId"] == "early"
    assert (out[0]["registeredAt"], out[0]["resolvedAt"]) == (10 * S, 10 * S)
    assert core.state.get_wait("w1") is None  # resolved at once: never pending
    assert core.core.due_timers(core.state, 10 * H, 0, 10) == []


def test_oldest_buffered_event_wins(core: Core) -> None:
    core.event("clicked", "u", 2 * S, eventId="second")
    core.event("clicked", "u", 1 * S, eventId="first")  # older timestamp, processed later
    out = resumes(core.register("w1", "clicked", "u", 3 * S))
    assert out[0]["event"]["eventId"] == "first"


def test_matched_event_stays_available(core: Core) -> None:
    core.event("clicked", "u", 0, eventId="e")
    assert resumes(core.register("w1", "clicked", "u", S))[0]["event"]["eventId"] == "e"
    assert resumes(core.register("w2", "clicked", "u", 2 * S))[0]["event"]["eventId"] == "e"


def test_event_matched_on_arrival_is_buffered_too(core: Core) -> None:
    core.register("w1", "clicked", "u", 0)
    core.event("clicked", "u", S, eventId="e")
    assert resumes(core.register("w2", "clicked", "u", 2 * S))[0]["event"]["eventId"] == "e"


def test_lookback_zero_does_not_match_a_buffered_event(core: Core) -> None:
    core.event("signed", "d", 0, eventId="before")
    assert core.register("w1", "signed", "d", S, lookback="0") == []
    out = resumes(core.event("signed", "d", 2 * S, eventId="after"))
    assert out[0]["event"]["eventId"] == "after"


@pytest.mark.parametrize("age", [5 * S, 10 * S], ids=["five-seconds-older", "window-edge"])
def test_lookback_ten_seconds_matches_an_event_up_to_ten_seconds_older(
    core: Core, age: int
) -> None:
    core.event("signed", "d", 20 * S - age, eventId="recent")  # the window's edge is inclusive
    out = resumes(core.register("w1", "signed", "d", 20 * S, lookback="10s"))
    assert out[0]["event"]["eventId"] == "recent"


def test_lookback_ten_seconds_ignores_an_event_twenty_seconds_older(core: Core) -> None:
    core.event("signed", "d", 0, eventId="old")
    assert core.register("w1", "signed", "d", 20 * S, lookback="10s") == []
    out = resumes(core.event("signed", "d", 21 * S, eventId="new"))
    assert out[0]["event"]["eventId"] == "new"


def test_lookback_applies_to_events_processed_while_the_wait_is_pending(core: Core) -> None:
    """An event appended before the window opened does not match, also when the worker reads
    it after the registration (a lagging partition, a replay)."""
    core.register("w1", "signed", "d", 100 * S, lookback="10s")
    assert core.event("signed", "d", 90 * S - 1, eventId="old") == []
    fresh = core.event("signed", "d", 95 * S, eventId="fresh")
    assert [r["event"]["eventId"] for r in resumes(fresh)] == ["fresh"]


# -- every window in record times --------------------------------------------------------------
#
# The record time is the Kafka timestamp of the record as logged: the broker's append time
# under LogAppendTime, the producer's clock on a broker that keeps CreateTime. The event's own
# ``timestamp`` field is data (the resume carries it, an `if` reads it) and never decides.

REG = 1_800_000_000_000  # the registration's record time
ORDERS = ["event-first", "registration-first"]


def _in_order(
    core: Core, order: str, event_at: int, registration: dict[str, Any], **event: Any
) -> list[Emit]:
    """Process the registration of ``w1`` (record time ``REG``) and one event (record time
    ``event_at``) in ``order``: the two are on different topics, so either may come first."""
    event.setdefault("eventId", "e")

    def register() -> list[Emit]:
        return core.register("w1", "signed", "d", REG, **registration)

    def send() -> list[Emit]:
        return core.event("signed", "d", event_at, **event)

    return register() + send() if order == "registration-first" else send() + register()


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    "stamp_age",
    [500, 10 * 60 * S],
    ids=["producer-clock-half-a-second-behind", "relayed-ten-minutes-old"],
)
def test_lookback_zero_counts_an_event_appended_after_it_whatever_its_timestamp(
    core: Core, order: str, stamp_age: int
) -> None:
    """Appended 1.5 s after a lookback-0 registration, stamped (its ``timestamp``) before it:
    it matches, and the resume carries the event's own ``timestamp``."""
    stamp = REG - stamp_age
    out = resumes(_in_order(core, order, REG + 1_500, {"lookback": "0"}, timestamp=stamp))
    assert [(r["waitId"], r["outcome"]) for r in out] == [("w1", "matched")]
    assert out[0]["event"]["timestamp"] == stamp
    assert out[0]["registeredAt"] == REG


@pytest.mark.parametrize("order", ORDERS)
def test_lookback_zero_ignores_an_event_appended_half_a_second_before_it(
    core: Core, order: str
) -> None:
    """On a broker that keeps the producer's time, an event producer whose clock runs 0.5 s
    behind the runner's stamps its record before the registration: in both orders it does not
    match, and the wait times out."""
    out = _in_order(core, order, REG - 500, {"lookback": "0", "timeout": "5s"})
    assert resumes(out) == []
    assert _outcomes(core.fire_timers(REG + 5 * S)) == [("w1", "timed_out", "fail")]


@pytest.mark.parametrize("order", ORDERS)
def test_an_event_in_the_same_millisecond_as_a_lookback_zero_registration_counts(
    core: Core, order: str
) -> None:
    out = _in_order(core, order, REG, {"lookback": "0"})
    assert _outcomes(out) == [("w1", "matched", "continue")]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("event_at", "stamp", "matched"),
    [
        (REG - 5 * 60 * S, REG - H, True),  # the window's first millisecond, stamped long ago
        (REG - 5 * 60 * S - 1, REG, False),  # a millisecond before it, stamped "now"
    ],
    ids=["window-start", "just-before"],
)
def test_lookback_five_minutes_is_measured_in_record_times(
    core: Core, order: str, event_at: int, stamp: int, matched: bool
) -> None:
    out = _in_order(core, order, event_at, {"lookback": "5m"}, timestamp=stamp)
    assert _outcomes(out) == ([("w1", "matched", "continue")] if matched else [])


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("event_at", "matched"),
    [(REG - 10 * S + 1, True), (REG - 10 * S, False)],
    ids=["alive-at-registration", "expired-at-registration"],
)
def test_ttl_counts_from_the_events_record_time(
    core: Core, order: str, event_at: int, matched: bool
) -> None:
    """``ttl: 10s`` keeps an event until its record time + 10 s (exclusive), whatever its own
    ``timestamp`` says (here an hour older than its ttl)."""
    out = _in_order(core, order, event_at, {}, ttl="10s", timestamp=event_at - H)
    assert _outcomes(out) == ([("w1", "matched", "continue")] if matched else [])


def test_an_event_stamped_longer_ago_than_its_ttl_is_kept(core: Core) -> None:
    """Its TTL runs from its record's time, so no event has expired when it is processed."""
    assert core.event("otp", "u", 10 * S, timestamp=0, ttl="5s") == []
    assert core.core.counters.events_buffered == 1
    assert len(resumes(core.register("w1", "otp", "u", 15 * S - 1))) == 1
    assert core.register("w2", "otp", "u", 15 * S) == []


def test_event_ttl_expiry(core: Core) -> None:
    core.event("otp", "u", 0, ttl="1s")
    assert core.register("w1", "otp", "u", 2 * S) == []


def test_event_available_until_just_before_its_ttl(core: Core) -> None:
    core.event("otp", "u", 0, ttl="1s")
    assert len(resumes(core.register("w1", "otp", "u", S - 1))) == 1
    assert core.register("w2", "otp", "u", S) == []  # expiresAt is exclusive


def test_default_ttl_from_settings(make_core: Callable[..., Core]) -> None:
    core = make_core(CoreSettings(event_ttl_ms=5 * S))
    core.event("otp", "u", 0)
    assert core.register("w1", "otp", "u", 6 * S) == []
    core.event("otp", "v", 0)
    assert len(resumes(core.register("w2", "otp", "v", 4 * S))) == 1


def test_default_ttl_is_a_day() -> None:
    assert CoreSettings().event_ttl_ms == 24 * H


def test_event_ttl_overrides_the_default(make_core: Callable[..., Core]) -> None:
    core = make_core(CoreSettings(event_ttl_ms=5 * S))
    core.event("otp", "u", 0, ttl="1h")
    assert len(resumes(core.register("w1", "otp", "u", 30 * 60 * S))) == 1


def test_ttl_zero_matches_pending_but_is_not_kept(core: Core) -> None:
    core.register("w1", "ping", "u", 0)
    assert len(resumes(core.event("ping", "u", S, ttl="0"))) == 1
    assert core.register("w2", "ping", "u", 2 * S) == []


def test_an_expired_event_does_not_match_a_wait_that_registered_after_it_expired(
    core: Core,
) -> None:
    """§2.4/§2.6: whether an event is available to a wait must not depend on processing order.

    Event-first, an event (ttl 1 s, stamped 0) is gone when a wait registers at 2 s. If the
    registration is processed first (the topics interleave differently on replay), the same
    event must not match it either: at 2 s it had already expired.
    """
    core.register("w1", "otp", "u", 2 * S)
    out = core.event("otp", "u", 0, ttl="1s")
    assert resumes(out) == [], "an event that expired before the wait registered matched it"


# -- §2.5 idempotency --------------------------------------------------------------------------


def test_duplicate_event_is_dropped_within_the_dedup_window(
    make_core: Callable[..., Core],
) -> None:
    core = make_core(CoreSettings(dedup_window_ms=60 * S))
    core.register("w1", "paid", "o", 0)
    assert len(resumes(core.event("paid", "o", S, idempotencyKey="k"))) == 1
    core.register("w2", "paid", "o", 2 * S, lookback="0")
    assert core.event("paid", "o", 3 * S, idempotencyKey="k", eventId="dup") == []  # no match
    assert core.core.counters.events_duplicate == 1
    # ...and not buffered: a wait registering later does not see the duplicate.
    assert [e.seq for _, e in core.state.iter_buffered()] == [1 + 1]  # the original only
    later = resumes(core.register("w3", "paid", "o", 4 * S))
    assert later[0]["event"]["eventId"] != "dup"


def test_duplicate_is_accepted_again_after_the_dedup_window(
    make_core: Callable[..., Core],
) -> None:
    core = make_core(CoreSettings(dedup_window_ms=60 * S))
    core.event("paid", "o", 0, idempotencyKey="k")
    core.register("w1", "paid", "o", S, lookback="0")
    assert core.event("paid", "o", 60 * S - 1, idempotencyKey="k") == []  # still inside
    assert len(resumes(core.event("paid", "o", 60 * S, idempotencyKey="k"))) == 1  # window over


def test_dedup_is_per_name(core: Core) -> None:
    core.register("w1", "a", "o", 0)
    core.register("w2", "b", "o", 0)
    assert len(resumes(core.event("a", "o", S, idempotencyKey="same"))) == 1
    assert len(resumes(core.event("b", "o", S, idempotencyKey="same"))) == 1


def test_events_without_idempotency_key_are_never_deduplicated(core: Core) -> None:
    core.register("w1", "a", "o", 0)
    core.register("w2", "a", "o", 0, lookback="0")
    core.event("a", "o", S, eventId="same")
    assert core.core.counters.events_duplicate == 0
    assert len(list(core.state.iter_buffered())) == 1


def test_reregistering_a_pending_wait_is_a_no_op(core: Core) -> None:
    core.register("w1", "paid", "o", 0, timeout="1h", metadata="first")
    assert core.register("w1", "paid", "o", S, timeout="1s", metadata="second") == []
    assert core.core.counters.registrations_duplicate == 1
    assert core.state.waits_on(b"paid|o") == ["w1"]
    assert core.fire_timers(10 * S) == []  # the original 1h timeout stands
    (resume,) = resumes(core.event("paid", "o", 20 * S))
    assert (resume["registeredAt"], resume["metadata"]) == (0, "first")


def test_reregistering_a_resolved_wait_reemits_the_same_resume(core: Core) -> None:
    core.register("w1", "paid", "o", 0)
    first = core.event("paid", "o", S)
    again = core.register("w1", "paid", "o", 2 * S)
    assert [(e.target, e.key, e.value) for e in again] == [
        (e.target, e.key, e.value) for e in first
    ]
    assert core.core.counters.resumes_reemitted == 1


@pytest.mark.parametrize("how", ["timeout", "cancel", "buffered"])
def test_reemit_is_byte_identical_for_every_outcome(core: Core, how: str) -> None:
    if how == "buffered":
        core.event("paid", "o", 0)
        first = core.register("w1", "paid", "o", S)
    else:
        core.register("w1", "paid", "o", 0, timeout="1s")
        first = core.fire_timers(S) if how == "timeout" else core.cancel("w1", "paid", "o", S)
    assert len(first) == 1
    assert [e.value for e in core.register("w1", "paid", "o", 5 * S)] == [first[0].value]


def test_reemitted_resume_goes_to_its_runs_partition(core: Core) -> None:
    """§1: resume commands are keyed by their runId.

    A resolved waitId registered again under another runId gets the original resume back
    (which names the original run) — keyed by the new runId, so it lands on a partition the
    original run's follower does not read and its key disagrees with its body.
    """
    core.register("w1", "paid", "o", 0, runId="run-a")
    core.event("paid", "o", S)
    (emit,) = core.register("w1", "paid", "o", 2 * S, runId="run-b")
    body = json.loads(emit.value or b"")
    assert emit.key == body["runId"].encode(), (emit.key, body["runId"])


def test_tombstone_retention_frees_the_wait_id(make_core: Callable[..., Core]) -> None:
    core = make_core(CoreSettings(tombstone_retention_ms=10 * S))
    core.register("w1", "paid", "o", 0)
    first = resumes(core.event("paid", "o", S))[0]
    assert core.core.purge(core.state, 20 * S, 100) >= 1
    out = resumes(core.register("w1", "paid", "o", 30 * S))  # a new wait; the event is buffered
    assert out[0]["resumeId"] != first["resumeId"]
    assert out[0]["registeredAt"] == 30 * S


def test_expired_tombstone_is_not_reemitted_even_before_purge(
    make_core: Callable[..., Core],
) -> None:
    core = make_core(CoreSettings(tombstone_retention_ms=10 * S))
    core.register("w1", "paid", "o", 0)
    core.event("paid", "o", S)
    assert core.register("w1", "paid", "o", 11 * S, lookback="0") == []  # pending again
    assert core.state.get_wait("w1") is not None


# -- §2.3 / cancel -----------------------------------------------------------------------------


def test_cancel(core: Core) -> None:
    core.register("w1", "approval", "x", 0, metadata={"m": 1})
    (resume,) = resumes(core.cancel("w1", "approval", "x", S))
    assert (resume["outcome"], resume["action"], resume["event"]) == ("cancelled", "cancel", None)
    assert (resume["metadata"], resume["resolvedAt"]) == ({"m": 1}, S)
    assert core.event("approval", "x", 2 * S) == []  # cancel won; the match is a no-op
    assert core.fire_timers(10 * H) == []  # and so is the timeout


def test_cancel_of_a_resolved_or_unknown_wait_is_a_no_op(core: Core) -> None:
    core.register("w1", "approval", "x", 0)
    core.cancel("w1", "approval", "x", S)
    assert core.cancel("w1", "approval", "x", 3 * S) == []
    assert core.cancel("nope", "approval", "x", 3 * S) == []
    assert core.core.counters.cancels_unknown == 2


def test_cancel_leaves_other_waits_alone(core: Core) -> None:
    core.register("w1", "approval", "x", 0)
    core.register("w2", "approval", "x", 0)
    core.cancel("w1", "approval", "x", S)
    assert _outcomes(core.event("approval", "x", 2 * S)) == [("w2", "matched", "continue")]


# -- §2.6 timeouts -----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["fail", "continue", "cancel"])
def test_timeout_action_is_its_on_timeout(core: Core, policy: str) -> None:
    core.register("w1", "reply", "x", 0, timeout="2s", onTimeout=policy, metadata=7)
    (resume,) = resumes(core.fire_timers(2 * S))
    assert (resume["outcome"], resume["action"], resume["event"]) == ("timed_out", policy, None)
    assert (resume["registeredAt"], resume["resolvedAt"], resume["metadata"]) == (0, 2 * S, 7)


def test_default_on_timeout_is_fail(core: Core) -> None:
    core.register("w1", "reply", "x", 0, timeout="1s")
    assert _outcomes(core.fire_timers(S)) == [("w1", "timed_out", "fail")]


def test_no_timer_is_due_before_its_deadline(core: Core) -> None:
    core.register("w1", "reply", "x", 1000, timeout="2s")
    assert core.core.due_timers(core.state, 3 * S - 1, 0, 100) == []
    assert len(core.core.due_timers(core.state, 3 * S, 0, 100)) == 1


def test_timer_command_is_a_wait_command_for_the_same_pair(core: Core) -> None:
    core.register("w1", "reply", "x", 0, timeout="1s")
    (timer,) = core.core.due_timers(core.state, S, 7, 10)
    assert (timer.target, timer.partition, timer.key) == (Target.WAIT_COMMANDS, 7, b"reply|x")
    assert json.loads(timer.value or b"") == {
        "type": "timer",
        "waitId": "w1",
        "name": "reply",
        "correlationKey": "x",
        "deadline": S,
    }
    assert core.state.get_wait("w1") is not None  # asking is not resolving: the log decides


def test_due_timers_come_earliest_first_and_respect_the_limit(core: Core) -> None:
    for wait_id, timeout in (("late", "3s"), ("early", "1s"), ("mid", "2s")):
        core.register(wait_id, "reply", wait_id, 0, timeout=timeout)
    timers = core.core.due_timers(core.state, 10 * S, 0, 2)
    assert [json.loads(t.value or b"")["waitId"] for t in timers] == ["early", "mid"]


def test_stale_timer_is_ignored(core: Core) -> None:
    core.register("w1", "reply", "x", 0, timeout="1s")
    (timer,) = core.core.due_timers(core.state, S, 0, 10)
    core.event("reply", "x", S // 2)  # matched before the timer record is processed
    assert core.raw(Source.WAIT_COMMANDS, timer.value or b"", S, timer.key) == []
    assert core.core.counters.timers_stale == 1


def test_timer_with_the_wrong_deadline_is_ignored(core: Core) -> None:
    core.register("w1", "reply", "x", 0, timeout="10s")
    forged = {
        "type": "timer",
        "waitId": "w1",
        "name": "reply",
        "correlationKey": "x",
        "deadline": S,
    }
    assert core.raw(Source.WAIT_COMMANDS, json.dumps(forged).encode(), S, b"reply|x") == []
    assert core.core.counters.timers_stale == 1
    assert core.state.get_wait("w1") is not None


def test_replayed_timer_after_timeout_is_a_no_op(core: Core) -> None:
    core.register("w1", "reply", "x", 0, timeout="1s")
    (timer,) = core.core.due_timers(core.state, S, 0, 10)
    assert len(core.raw(Source.WAIT_COMMANDS, timer.value or b"", S, timer.key)) == 1
    assert core.raw(Source.WAIT_COMMANDS, timer.value or b"", 2 * S, timer.key) == []


def test_event_after_the_deadline_does_not_match(core: Core) -> None:
    """§2.6: a wait with no match by registeredAt + timeout resolves timed_out.

    The timer record and the event sit on different topics, so their processing order is not
    fixed (a lagging worker, a replay). An event from 4 s after the deadline must not turn the
    outcome into `matched` just because it was processed before the timer record.
    """
    core.register("w1", "reply", "x", 0, timeout="1s")
    (timer,) = core.core.due_timers(core.state, S, 0, 10)
    late = core.event("reply", "x", 5 * S)
    out = late + core.raw(Source.WAIT_COMMANDS, timer.value or b"", 5 * S, timer.key)
    assert _outcomes(out) == [("w1", "timed_out", "fail")]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("event_at", "matched"),
    [(REG + 5 * S - 1, True), (REG + 5 * S, False)],
    ids=["appended-before-the-deadline", "appended-at-the-deadline"],
)
def test_the_deadline_is_compared_with_the_events_record_time(
    core: Core, order: str, event_at: int, matched: bool
) -> None:
    """Stamped (its ``timestamp``) at the registration, an event appended at the deadline
    does not match in either order: by record times the wait had timed out."""
    out = _in_order(core, order, event_at, {"timeout": "5s"}, timestamp=REG)
    out += core.fire_timers(REG + 10 * S)
    outcome = ("w1", "matched", "continue") if matched else ("w1", "timed_out", "fail")
    assert _outcomes(out) == [outcome]


# -- §3 filters --------------------------------------------------------------------------------


def test_cel_filter_true_and_false(core: Core) -> None:
    expr = "async.data.userId == event.data.userId && async.data.amount > 100"
    core.register("w1", "buy", "k", 0, context={"data": {"userId": "u1"}}, **{"if": expr})
    assert core.event("buy", "k", S, data={"userId": "u1", "amount": 50}) == []
    assert core.event("buy", "k", S, data={"userId": "u2", "amount": 500}) == []
    out = resumes(core.event("buy", "k", S, data={"userId": "u1", "amount": 150}))
    assert out[0]["event"]["data"]["amount"] == 150


def test_filter_sees_the_whole_event_as_async(core: Core) -> None:
    core.register("w1", "buy", "k", 0, **{"if": "async.name == 'buy' && async.eventId == 'e9'"})
    assert core.event("buy", "k", S, eventId="e1") == []
    assert len(resumes(core.event("buy", "k", S, eventId="e9"))) == 1


def test_filter_without_context_sees_an_empty_event(core: Core) -> None:
    core.register("w1", "buy", "k", 0, **{"if": "size(event) == 0"})
    assert len(resumes(core.event("buy", "k", S))) == 1
    assert core.core.filters.errors == 0


def test_filters_pick_among_fanned_out_waits(core: Core) -> None:
    core.register("small", "buy", "k", 0, **{"if": "async.data.amount < 100"})
    core.register("big", "buy", "k", 0, **{"if": "async.data.amount >= 100"})
    assert _outcomes(core.event("buy", "k", S, data={"amount": 500})) == [
        ("big", "matched", "continue")
    ]


def test_cel_filter_on_buffered_events(core: Core) -> None:
    core.event("buy", "k", 0, data={"amount": 1}, eventId="small")
    core.event("buy", "k", 1, data={"amount": 500}, eventId="big")
    out = resumes(core.register("w1", "buy", "k", S, **{"if": "async.data.amount > 100"}))
    assert out[0]["event"]["eventId"] == "big"


def test_filter_runtime_error_is_no_match_and_counted(core: Core) -> None:
    core.register("w1", "buy", "k", 0, **{"if": "async.data.missing > 1"})
    assert core.event("buy", "k", S, data={}) == []
    core.register("w2", "buy", "j", 0, **{"if": "async.data.amount"})  # not a bool
    assert core.event("buy", "j", S, data={"amount": 3}) == []
    core.register("w3", "buy", "z", 0, **{"if": "1 / async.data.n == 1"})
    assert core.event("buy", "z", S, data={"n": 0}) == []
    assert core.core.filters.errors == 3
    assert core.state.get_wait("w1") is not None  # still pending: a later event can match
    assert len(resumes(core.event("buy", "k", 2 * S, data={"missing": 2}))) == 1


def test_bad_expression_is_dead_lettered_and_rejected(core: Core) -> None:
    out = core.register("w1", "buy", "k", 0, metadata={"m": 1}, **{"if": "async.data.amount >"})
    (dead,) = dead_letters(out)
    assert "does not compile" in _reason(dead)
    (rejected,) = resumes(out)
    assert (rejected["outcome"], rejected["action"]) == ("rejected", "fail")
    assert rejected["runId"] == "run-w1" and "does not compile" in rejected["error"]
    assert rejected["metadata"] == {"m": 1}
    assert core.state.get_wait("w1") is None


def test_bad_reregistration_of_a_pending_wait_gives_it_no_second_outcome(core: Core) -> None:
    """§2.3: each wait resolves once; §2.5: a registration whose waitId is pending is a no-op.

    A second registration of a pending waitId that fails validation (here, an `if` that does
    not compile) yields a `rejected` resume for that waitId — and the pending wait still
    matches later, so the runner sees two different outcomes for one wait.
    """
    core.register("w1", "buy", "k", 0)
    out = core.register("w1", "buy", "k", S, **{"if": "async."})
    out += core.event("buy", "k", 2 * S)
    assert len({r["outcome"] for r in resumes(out)}) == 1, _outcomes(out)


# -- §2.7 bad input ----------------------------------------------------------------------------


def _event_body(**fields: Any) -> bytes:
    return json.dumps({"eventId": "e", "name": "a", "correlationKey": "b", **fields}).encode()


BAD_RECORDS = [
    pytest.param(Source.EVENTS, b"{not json", b"a|b", "invalid event", id="event-not-json"),
    pytest.param(Source.EVENTS, b"[1,2]", b"a|b", "invalid event", id="event-not-object"),
    pytest.param(
        Source.EVENTS,
        json.dumps({"name": "a", "correlationKey": "b"}).encode(),
        b"a|b",
        "eventId",
        id="event-schema-invalid",
    ),
    pytest.param(Source.EVENTS, _event_body(ttl="soon"), b"a|b", "ttl", id="event-bad-ttl"),
    pytest.param(Source.EVENTS, _event_body(), b"a|c", "mis-keyed", id="event-miskeyed"),
    pytest.param(Source.EVENTS, _event_body(), None, "mis-keyed", id="event-no-key"),
    pytest.param(Source.EVENTS, "ü".encode("latin-1"), b"a|b", "invalid", id="event-not-utf8"),
    pytest.param(Source.WAIT_COMMANDS, b"{not json", b"a|b", "invalid wait", id="wait-not-json"),
    pytest.param(Source.WAIT_COMMANDS, b"[1]", b"a|b", "JSON object", id="wait-not-object"),
    pytest.param(
        Source.WAIT_COMMANDS,
        json.dumps({"type": "explode", "waitId": "w"}).encode(),
        b"a|b",
        "invalid wait command",
        id="wait-unknown-type",
    ),
    pytest.param(
        Source.WAIT_COMMANDS,
        json.dumps({"type": "cancel", "waitId": "w", "name": "a", "correlationKey": "b"}).encode(),
        b"a|c",
        "mis-keyed",
        id="cancel-miskeyed",
    ),
]


@pytest.mark.parametrize(("source", "value", "key", "reason"), BAD_RECORDS)
def test_bad_records_are_dead_lettered_with_their_bytes(
    core: Core, source: Source, value: bytes, key: bytes | None, reason: str
) -> None:
    record = InputRecord(source, key, value, 0, 3, 41, (("trace", b"t-1"),))
    (dead,) = core.core.process(core.state, record)
    assert dead.target is Target.DEAD_LETTERS
    assert (dead.key, dead.value) == (key, value)  # the original bytes
    headers = dict(dead.headers)
    assert reason in headers[HEADER_REASON].decode()
    assert headers[HEADER_SOURCE] == f"{source.value}/3/41".encode()
    assert headers["trace"] == b"t-1"  # the original headers
    assert core.core.counters.dead_letters == 1
    assert list(core.state.iter_buffered()) == [] and list(core.state.iter_waits()) == []


def test_too_large_record_is_dead_lettered(make_core: Callable[..., Core]) -> None:
    core = make_core(CoreSettings(max_record_bytes=100))
    value = _event_body(data={"blob": "x" * 200})
    (dead,) = core.raw(Source.EVENTS, value, 0, b"a|b")
    # A reference, not a copy (a copy might not fit the dead-letter topic).
    assert (dead.key, dead.value) == (b"a|b", None)
    assert "exceeds the limit of 100" in _reason(dead)
    headers = dict(dead.headers)
    assert headers["waitline.size"] == str(len(value) + 3).encode()
    assert headers["waitline.sha256"] == hashlib.sha256(value).hexdigest().encode()


def test_record_without_value_is_dead_lettered(core: Core) -> None:
    (dead,) = core.core.process(core.state, InputRecord(Source.EVENTS, b"a|b", None, 0, 0, 1))
    assert dead.target is Target.DEAD_LETTERS and "no value" in _reason(dead)


def test_record_stamped_after_year_9999_is_dead_lettered_not_fatal(core: Core) -> None:
    # A producer's clock (CreateTime) is not bounded; a resume built from it would not validate.
    late = MAX_EPOCH_MS + 1
    (dead,) = core.raw(Source.EVENTS, _event_body(), late, b"a|b")
    assert dead.target is Target.DEAD_LETTERS and "after the year 9999" in _reason(dead)
    body = {"waitId": "w1", "runId": "r1", "name": "a", "correlationKey": "b", "timeout": "1h"}
    out = core.raw(Source.WAIT_COMMANDS, json.dumps(body).encode(), late, b"a|b")
    assert "after the year 9999" in _reason(dead_letters(out)[0])
    (rejected,) = resumes(out)  # the runner is told, with a resume that validates
    resume = ResumeCommand.model_validate(rejected)
    assert (resume.outcome, resume.registered_at) == ("rejected", MAX_EPOCH_MS)
    assert core.state.get_wait("w1") is None


def test_record_at_the_size_limit_is_accepted(make_core: Callable[..., Core]) -> None:
    value = _event_body(data={"pad": "x" * 200})  # larger than the registration
    core = make_core(CoreSettings(max_record_bytes=len(value) + len(b"a|b")))  # key counts
    core.register("w1", "a", "b", 0)
    assert _outcomes(core.raw(Source.EVENTS, value, S, b"a|b")) == [("w1", "matched", "continue")]


def test_invalid_registration_with_ids_gets_a_rejected_resume(core: Core) -> None:
    body = {"waitId": "w1", "runId": "r1", "name": "a", "correlationKey": "b", "timeout": "soon"}
    out = core.raw(Source.WAIT_COMMANDS, json.dumps(body).encode(), 7 * S, b"a|b")
    (dead,) = dead_letters(out)
    assert "timeout" in _reason(dead) and dead.value == json.dumps(body).encode()
    (rejected,) = resumes(out)
    assert (rejected["waitId"], rejected["runId"], rejected["outcome"]) == ("w1", "r1", "rejected")
    assert rejected["action"] == "fail" and "timeout" in rejected["error"]
    assert [e.key for e in out if e.target is Target.RESUMES] == [b"r1"]
    assert (rejected["registeredAt"], rejected["resolvedAt"]) == (7 * S, 7 * S)


@pytest.mark.parametrize(
    "body",
    [
        {"runId": "r1", "name": "a", "correlationKey": "b", "timeout": "soon"},  # no waitId
        {"waitId": "w1", "name": "a", "correlationKey": "b", "timeout": "soon"},  # no runId
        {"waitId": 5, "runId": "r1", "name": "a", "correlationKey": "b"},  # not a string
        {"type": "cancel", "waitId": "w1", "runId": "r1", "name": "a|x", "correlationKey": "b"},
    ],
)
def test_invalid_command_without_usable_ids_is_only_dead_lettered(
    core: Core, body: dict[str, Any]
) -> None:
    out = core.raw(Source.WAIT_COMMANDS, json.dumps(body).encode(), 0, b"a|b")
    assert [e.target for e in out] == [Target.DEAD_LETTERS]


def test_miskeyed_registration_is_rejected(core: Core) -> None:
    reg = {"waitId": "w", "runId": "r", "name": "a", "correlationKey": "b", "timeout": "1s"}
    out = core.raw(Source.WAIT_COMMANDS, json.dumps(reg).encode(), 0, b"a|c")
    assert "mis-keyed" in _reason(dead_letters(out)[0])
    assert resumes(out)[0]["outcome"] == "rejected"
    assert core.state.get_wait("w") is None


def test_processing_continues_after_bad_records(core: Core) -> None:
    core.raw(Source.EVENTS, b"garbage", 0, b"a|b")
    core.raw(Source.WAIT_COMMANDS, b"garbage", 0, b"a|b")
    core.register("w1", "a", "b", S)
    assert _outcomes(core.event("a", "b", 2 * S)) == [("w1", "matched", "continue")]


def test_deeply_nested_wait_command_is_dead_lettered_not_raised(core: Core) -> None:
    """§2.7: bad input never stops the processor.

    A 100 kB wait command of nested arrays (well under the 1 MiB record limit) makes
    ``json.loads`` raise RecursionError, which the core does not catch: the worker crashes on
    the record, restarts, reads it again, crashes again.
    """
    value = b"[" * 100_000
    out = core.raw(Source.WAIT_COMMANDS, value, 0, b"a|b")
    assert [e.target for e in out] == [Target.DEAD_LETTERS]
    assert out[0].value == value


@pytest.mark.parametrize(
    ("source", "fields"),
    [
        pytest.param(Source.WAIT_COMMANDS, {"timeout": "999999999999d"}, id="huge-timeout"),
        pytest.param(Source.EVENTS, {"ttl": "999999999999d"}, id="huge-ttl"),
        pytest.param(Source.EVENTS, {"timestamp": 10**20}, id="huge-timestamp"),
    ],
)
def test_out_of_range_times_do_not_stop_the_processor(
    core: Core, source: Source, fields: dict[str, Any]
) -> None:
    """§2.7: a timeout, TTL or timestamp past 2^64 ms passes validation, then overflows the
    8-byte big-endian state keys (struct.error) inside the core."""
    base: dict[str, Any] = (
        {"waitId": "w1", "runId": "r1", "name": "a", "correlationKey": "b", "timeout": "1s"}
        if source is Source.WAIT_COMMANDS
        else {"eventId": "e1", "name": "a", "correlationKey": "b"}
    )
    value = json.dumps({**base, **fields}).encode()
    out = core.raw(source, value, 0, b"a|b")  # must not raise
    assert all(e.target in (Target.DEAD_LETTERS, Target.RESUMES) for e in out)
    core.register("w2", "a", "b", S)  # and the state is still usable
    assert [r["waitId"] for r in resumes(core.event("a", "b", 2 * S))] in (["w2"], ["w1", "w2"])


# -- resumeId ----------------------------------------------------------------------------------


def test_resume_id_is_the_same_for_a_reemitted_resume(core: Core) -> None:
    core.register("w1", "x", "k", 0)
    (first,) = resumes(core.event("x", "k", S))
    (again,) = resumes(core.register("w1", "x", "k", 2 * S))
    assert first["resumeId"] == again["resumeId"] == resume_id_for("w1", 0)


def test_resume_id_is_deterministic_across_replays(make_core: Callable[..., Core]) -> None:
    def run() -> list[bytes | None]:
        core = make_core()
        out = core.register("w1", "x", "k", 0) + core.event("x", "k", S)
        out += core.register("w2", "x", "k", 2 * S, timeout="1s", lookback="0")
        out += core.fire_timers(5 * S)
        out += core.register("w3", "x", "k", 6 * S) + core.cancel("w3", "x", "k", 7 * S)
        out += core.register("w4", "x", "k", 8 * S, **{"if": "nope("})
        return [e.value for e in out]

    first, second = run(), run()
    assert first == second
    ids = [json.loads(v or b"")["resumeId"] for v in first if b"resumeId" in (v or b"")]
    assert len(ids) == len(set(ids)) == 4  # one per wait, each different


def test_resume_ids_differ_per_wait_and_per_registration() -> None:
    assert resume_id_for("w1", 0) == resume_id_for("w1", 0)
    assert resume_id_for("w1", 0) != resume_id_for("w2", 0)
    assert resume_id_for("w1", 0) != resume_id_for("w1", 1)


# -- §2.8 purge --------------------------------------------------------------------------------


def test_purge_removes_expired_events_and_dedup_keys(core: Core) -> None:
    core.event("a", "k", 0, ttl="1s", idempotencyKey="i")
    assert core.core.purge(core.state, 500, 100) == 0
    assert core.core.purge(core.state, 25 * H, 100) == 2  # event + dedup entry
    assert list(core.state.iter_buffered()) == []
    assert list(core.state.kv.scan(b"b", b"c")) == []  # no event body left
    assert core.state.dedup_expiry("a", "i") is None


def test_purge_removes_expired_tombstones(make_core: Callable[..., Core]) -> None:
    core = make_core(CoreSettings(tombstone_retention_ms=10 * S, event_ttl_ms=5 * S))
    core.register("w1", "a", "k", 0)
    core.event("a", "k", S)
    assert core.state.resolved("w1") is not None
    assert core.core.purge(core.state, 11 * S - 1, 100) == 1  # the event only (expired at 6 s)
    assert core.state.resolved("w1") is not None
    assert core.core.purge(core.state, 11 * S, 100) == 1
    assert core.state.resolved("w1") is None


def test_purge_keeps_live_state(core: Core) -> None:
    core.register("w1", "a", "k", 0, timeout="30d")
    core.event("b", "k", 0, ttl="2d")
    assert core.core.purge(core.state, 25 * H, 100) == 0
    assert core.state.get_wait("w1") is not None
    assert len(list(core.state.iter_buffered())) == 1


def test_purge_does_not_change_outcomes(make_core: Callable[..., Core]) -> None:
    def run(purge: bool) -> list[bytes | None]:
        core = make_core(CoreSettings(event_ttl_ms=5 * S, dedup_window_ms=5 * S))
        out = core.event("a", "k", 0, idempotencyKey="i")
        if purge:
            core.core.purge(core.state, 10 * S, 100)
        out += core.register("w1", "a", "k", 10 * S)
        out += core.event("a", "k", 11 * S, idempotencyKey="i")
        return [e.value for e in out]

    assert run(purge=True) == run(purge=False)


def test_purge_leaves_state_empty_after_everything_expired(
    make_core: Callable[..., Core],
) -> None:
    core = make_core(CoreSettings(event_ttl_ms=S, dedup_window_ms=S, tombstone_retention_ms=S))
    core.register("w1", "a", "k", 0)
    core.event("a", "k", 0, idempotencyKey="i")
    core.register("w2", "a", "k", 0, timeout="1s")
    core.fire_timers(2 * S)
    core.core.purge(core.state, 10 * S, 1000)
    assert isinstance(core.state.kv, MemoryKV)
    assert len(core.state.kv) == 0, list(core.state.kv.scan(b"", b"\xff"))


def test_keys_are_the_schema_keys() -> None:
    assert make_key("a", "k") == b"a|k"
    assert PartitionState(MemoryKV()).waits_on(make_key("a", "k")) == []


@pytest.mark.parametrize(
    ("wait_id", "registered_at"),
    [("w1", 0), ("run-42/verify-email", 1_795_439_246_428), ("ü/ß", 7)],
)
def test_resume_id_is_the_documented_uuid5(wait_id: str, registered_at: int) -> None:
    """The fast path computes exactly uuid5(namespace, waitId@registeredAt) (docs/semantics.md)."""
    from waitline.processors.correlation import _RESUME_NAMESPACE

    expected = uuid.uuid5(_RESUME_NAMESPACE, f"{wait_id}@{registered_at}")
    assert resume_id_for(wait_id, registered_at) == str(expected)


@pytest.mark.parametrize("order", ["event-first", "wait-first"])
def test_an_event_without_timestamp_carries_its_records_everywhere(core: Core, order: str) -> None:
    """§1: an event without ``timestamp`` takes its record's, in the filter and in the resume,
    whether it matches live or from the buffer (where it is kept as received)."""
    expr = "async.timestamp == 5000"
    if order == "event-first":
        assert core.event("paid", "o", 5 * S) == []
        out = resumes(core.register("w1", "paid", "o", 6 * S, **{"if": expr}))
    else:
        assert core.register("w1", "paid", "o", 4 * S, **{"if": expr}) == []
        out = resumes(core.event("paid", "o", 5 * S))
    assert [(r["waitId"], r["event"]["timestamp"]) for r in out] == [("w1", 5 * S)]


@pytest.mark.parametrize("order", ORDERS)
def test_an_events_own_timestamp_is_what_the_filter_and_the_resume_see(
    core: Core, order: str
) -> None:
    """Its record's time decides the window; its own ``timestamp`` is the data a filter reads
    and the resume carries, live or from the buffer."""
    stamp = REG - 10 * 60 * S
    registration = {"lookback": "0", "if": f"async.timestamp == {stamp}"}
    out = resumes(_in_order(core, order, REG + S, registration, timestamp=stamp))
    assert [(r["waitId"], r["event"]["timestamp"]) for r in out] == [("w1", stamp)]


# -- the resume's wire form --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "error", "metadata"),
    [
        (None, None, None),
        (None, "`if` expression does not compile", {"step": 3, "tags": ["a", "b"]}),
        (
            {"eventId": "e1", "name": "paid", "correlationKey": "o", "data": {"x": [1.5, None]},
             "idempotencyKey": None, "ttl": "1h", "timestamp": 17},
            None,
            "opaque",
        ),
    ],
)  # fmt: skip
def test_resume_json_is_the_models_wire_form(
    event: dict[str, Any] | None, error: str | None, metadata: Any
) -> None:
    # The core writes resumes without building ResumeCommand; the bytes must be the model's.
    model = ResumeCommand(
        resume_id=resume_id_for("w1", 5),
        wait_id="w1",
        run_id="r1",
        outcome="matched",
        action="continue",
        event=None if event is None else Event.model_validate(event),
        error=error,
        metadata=metadata,
        registered_at=5,
        resolved_at=9,
    )
    written = _resume_json(
        resume_id_for("w1", 5), "w1", "r1", "matched", "continue", event, error, metadata, 5, 9
    )
    assert written == model.to_json()
    assert ResumeCommand.model_validate_json(written) == model


@pytest.mark.parametrize(
    "raw",
    [
        b'{"eventId":"e1","name":"paid","correlationKey":"o"}',
        b'{"eventId":"e1","name":"paid","correlationKey":"o","data":{"x":[1.5,null],"y":"\\u00e9"},'
        b'"idempotencyKey":"i","ttl":"PT1H","timestamp":17}',
    ],
)
def test_the_direct_validator_and_serializer_are_the_models(raw: bytes) -> None:
    # The core calls pydantic's validator and serializer without the model's wrappers.
    event = _validate_event(raw)
    assert event == Event.model_validate_json(raw)
    stamped = event.model_dump(by_alias=True, mode="json")
    if stamped["timestamp"] is None:  # the record's time stands in for a missing one
        stamped["timestamp"] = 99
    assert _wire_event(event, 99) == stamped
    with pytest.raises(ValidationError):
        _validate_event(b'{"eventId":"","name":"paid","correlationKey":"o"}')


def test_a_matched_resume_carries_the_event_stamped_with_its_record_time(core: Core) -> None:
    core.register("w1", "paid", "o", 1_000, timeout="1h")
    out = core.event("paid", "o", 2_000, data={"amount": 3})
    (resume,) = resumes(out)
    event = ResumeCommand.model_validate(resume).event
    assert event is not None and event.timestamp == 2_000 and event.data == {"amount": 3}
