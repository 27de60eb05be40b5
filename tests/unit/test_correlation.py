"""SPEC §2, rule by rule, against the pure core (no Kafka, no RocksDB)."""

from __future__ import annotations

import json
from collections.abc import Callable

from coreharness import Core, dead_letters, resumes

from processors.correlation import CoreSettings, Source, Target
from schemas.keys import make_key

S = 1000  # one second in ms


def test_event_after_wait_matches(core: Core) -> None:
    assert core.register("w1", "paid", "o-1", 0, metadata={"step": 2}) == []
    out = resumes(core.event("paid", "o-1", 5 * S, data={"amount": 3}))
    assert [(r["waitId"], r["outcome"], r["action"]) for r in out] == [
        ("w1", "matched", "continue")
    ]
    assert out[0]["event"]["data"] == {"amount": 3}
    assert out[0]["metadata"] == {"step": 2}
    assert (out[0]["registeredAt"], out[0]["resolvedAt"]) == (0, 5 * S)


def test_other_name_or_key_does_not_match(core: Core) -> None:
    core.register("w1", "paid", "o-1", 0)
    assert resumes(core.event("paid", "o-2", S)) == []
    assert resumes(core.event("refunded", "o-1", S)) == []
    assert resumes(core.event("paid", "O-1", S)) == []  # exact, case-sensitive


def test_event_before_wait_is_buffered(core: Core) -> None:
    assert core.event("clicked", "u", 0, eventId="early") == []
    out = resumes(core.register("w1", "clicked", "u", 10 * S))
    assert out[0]["event"]["eventId"] == "early"
    assert out[0]["resolvedAt"] == 10 * S


def test_oldest_buffered_event_wins(core: Core) -> None:
    core.event("clicked", "u", 2 * S, eventId="second")
    core.event("clicked", "u", 1 * S, eventId="first")  # older timestamp, processed later
    out = resumes(core.register("w1", "clicked", "u", 3 * S))
    assert out[0]["event"]["eventId"] == "first"


def test_matched_event_stays_available(core: Core) -> None:
    core.event("clicked", "u", 0, eventId="e")
    assert resumes(core.register("w1", "clicked", "u", S))[0]["event"]["eventId"] == "e"
    assert resumes(core.register("w2", "clicked", "u", 2 * S))[0]["event"]["eventId"] == "e"


def test_lookback_zero_ignores_buffered_events(core: Core) -> None:
    core.event("signed", "d", 0)
    assert core.register("w1", "signed", "d", S, lookback="0") == []
    out = resumes(core.event("signed", "d", 2 * S, eventId="later"))
    assert out[0]["event"]["eventId"] == "later"


def test_lookback_window(core: Core) -> None:
    core.event("signed", "d", 0, eventId="old")
    core.event("signed", "d", 15 * S, eventId="recent")
    out = resumes(core.register("w1", "signed", "d", 20 * S, lookback="10s"))
    assert out[0]["event"]["eventId"] == "recent"
    assert core.register("w2", "signed", "d", 40 * S, lookback="10s") == []


def test_event_ttl_expiry(core: Core) -> None:
    core.event("otp", "u", 0, ttl="1s")
    assert core.register("w1", "otp", "u", 2 * S) == []


def test_default_ttl_from_settings(make_core: Callable[..., Core]) -> None:
    core = make_core(CoreSettings(event_ttl_ms=5 * S))
    core.event("otp", "u", 0)
    assert core.register("w1", "otp", "u", 6 * S) == []
    core.event("otp", "v", 0)
    assert len(resumes(core.register("w2", "otp", "v", 4 * S))) == 1


def test_event_expired_on_arrival_matches_nothing(core: Core) -> None:
    core.register("w1", "otp", "u", 0)
    assert core.event("otp", "u", 10 * S, timestamp=0, ttl="5s") == []
    assert core.core.counters.events_expired == 1


def test_ttl_zero_matches_pending_but_is_not_kept(core: Core) -> None:
    core.register("w1", "ping", "u", 0)
    assert len(resumes(core.event("ping", "u", S, ttl="0"))) == 1
    assert core.register("w2", "ping", "u", 2 * S) == []


def test_fan_out_in_registration_order(core: Core) -> None:
    for i in (3, 1, 2):
        core.register(f"w{i}", "deploy", "svc", i)
    out = resumes(core.event("deploy", "svc", 10 * S))
    assert [r["waitId"] for r in out] == ["w3", "w1", "w2"]
    assert len({r["event"]["eventId"] for r in out}) == 1


def test_two_hundred_keys_each_resumed_by_its_own_event(core: Core) -> None:
    for i in range(200):
        core.register(f"w{i}", "verified", f"k{i}", i)
    for i in reversed(range(200)):
        out = resumes(core.event("verified", f"k{i}", S + i, data={"i": i}))
        assert [(r["waitId"], r["event"]["data"]["i"]) for r in out] == [(f"w{i}", i)]


def test_duplicate_event_is_dropped_within_the_dedup_window(
    make_core: Callable[..., Core],
) -> None:
    core = make_core(CoreSettings(dedup_window_ms=60 * S))
    core.register("w1", "paid", "o", 0)
    assert len(resumes(core.event("paid", "o", S, idempotencyKey="k"))) == 1
    core.register("w2", "paid", "o", 2 * S, lookback="0")
    assert core.event("paid", "o", 3 * S, idempotencyKey="k") == []  # dropped, not buffered
    assert core.core.counters.events_duplicate == 1
    assert len(resumes(core.event("paid", "o", 70 * S, idempotencyKey="k"))) == 1  # window over


def test_dedup_is_per_name(core: Core) -> None:
    core.register("w1", "a", "o", 0)
    core.register("w2", "b", "o", 0)
    assert len(resumes(core.event("a", "o", S, idempotencyKey="same"))) == 1
    assert len(resumes(core.event("b", "o", S, idempotencyKey="same"))) == 1


def test_reregistering_a_pending_wait_is_a_no_op(core: Core) -> None:
    core.register("w1", "paid", "o", 0, timeout="1h")
    assert core.register("w1", "paid", "o", S, timeout="1s") == []
    assert core.core.counters.registrations_duplicate == 1
    assert core.fire_timers(10 * S) == []  # the original 1h timeout stands


def test_reregistering_a_resolved_wait_reemits_the_same_resume(core: Core) -> None:
    core.register("w1", "paid", "o", 0)
    first = core.event("paid", "o", S)
    again = core.register("w1", "paid", "o", 2 * S)
    assert [e.value for e in again] == [e.value for e in first]
    assert again[0].key == b"run-w1"


def test_tombstone_retention_frees_the_wait_id(make_core: Callable[..., Core]) -> None:
    core = make_core(CoreSettings(tombstone_retention_ms=10 * S))
    core.register("w1", "paid", "o", 0)
    first = resumes(core.event("paid", "o", S))[0]
    assert core.core.purge(core.state, 20 * S, 100) >= 1
    out = resumes(core.register("w1", "paid", "o", 30 * S))  # a new wait; the event is buffered
    assert out[0]["resumeId"] != first["resumeId"]


def test_cancel(core: Core) -> None:
    core.register("w1", "approval", "x", 0)
    out = resumes(core.cancel("w1", "approval", "x", S))
    assert [(r["outcome"], r["action"], r["event"]) for r in out] == [("cancelled", "cancel", None)]
    assert resumes(core.event("approval", "x", 2 * S)) == []
    assert core.cancel("w1", "approval", "x", 3 * S) == []
    assert core.cancel("nope", "approval", "x", 3 * S) == []
    assert core.core.counters.cancels_unknown == 2


def test_timeouts_with_each_on_timeout(core: Core) -> None:
    for policy in ("fail", "continue", "cancel"):
        core.register(f"w-{policy}", "reply", policy, 0, timeout="2s", onTimeout=policy)
    assert core.core.due_timers(core.state, 2 * S - 1, 0, 100) == []  # never early
    out = resumes(core.fire_timers(2 * S))
    assert sorted((r["waitId"], r["outcome"], r["action"]) for r in out) == [
        ("w-cancel", "timed_out", "cancel"),
        ("w-continue", "timed_out", "continue"),
        ("w-fail", "timed_out", "fail"),
    ]
    assert all(r["event"] is None and r["resolvedAt"] >= 2 * S for r in out)
    assert core.fire_timers(3 * S) == []


def test_default_on_timeout_is_fail(core: Core) -> None:
    core.register("w1", "reply", "x", 0, timeout="1s")
    assert resumes(core.fire_timers(S))[0]["action"] == "fail"


def test_stale_timer_is_ignored(core: Core) -> None:
    core.register("w1", "reply", "x", 0, timeout="1s")
    timers = core.core.due_timers(core.state, S, 0, 10)
    core.event("reply", "x", S // 2)  # matched before the timer record is processed
    value = timers[0].value or b""
    assert core.raw(Source.WAIT_COMMANDS, value, S, timers[0].key) == []
    assert core.core.counters.timers_stale == 1


def test_timer_commands_go_to_the_same_partition(core: Core) -> None:
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


def test_cel_filter(core: Core) -> None:
    expr = "async.data.userId == event.data.userId && async.data.amount > 100"
    core.register("w1", "buy", "k", 0, context={"data": {"userId": "u1"}}, **{"if": expr})
    assert core.event("buy", "k", S, data={"userId": "u1", "amount": 50}) == []
    assert core.event("buy", "k", S, data={"userId": "u2", "amount": 500}) == []
    out = resumes(core.event("buy", "k", S, data={"userId": "u1", "amount": 150}))
    assert out[0]["event"]["data"]["amount"] == 150


def test_cel_filter_on_buffered_events(core: Core) -> None:
    core.event("buy", "k", 0, data={"amount": 1}, eventId="small")
    core.event("buy", "k", 1, data={"amount": 500}, eventId="big")
    out = resumes(core.register("w1", "buy", "k", S, **{"if": "async.data.amount > 100"}))
    assert out[0]["event"]["eventId"] == "big"


def test_cel_evaluation_error_is_no_match_and_counted(core: Core) -> None:
    core.register("w1", "buy", "k", 0, **{"if": "async.data.missing > 1"})
    assert core.event("buy", "k", S, data={}) == []
    core.register("w2", "buy", "j", 0, **{"if": "async.data.amount"})  # not a bool
    assert core.event("buy", "j", S, data={"amount": 3}) == []
    assert core.core.filters.errors == 2


def test_bad_expression_is_rejected(core: Core) -> None:
    out = core.register("w1", "buy", "k", 0, **{"if": "async.data.amount >"})
    (dead,) = dead_letters(out)
    assert "does not compile" in dict(dead.headers)["waitline.error"].decode()
    (rejected,) = resumes(out)
    assert (rejected["outcome"], rejected["action"]) == ("rejected", "fail")
    assert rejected["runId"] == "run-w1" and "does not compile" in rejected["error"]


def test_unparseable_and_invalid_records_are_dead_lettered(core: Core) -> None:
    for source in (Source.EVENTS, Source.WAIT_COMMANDS):
        out = core.raw(source, b"{not json", 0, b"a|b")
        (dead,) = dead_letters(out)
        assert dead.value == b"{not json" and dead.key == b"a|b"
        assert resumes(out) == []
    out = core.raw(
        Source.EVENTS, json.dumps({"name": "a", "correlationKey": "b"}).encode(), 0, b"a|b"
    )
    assert "eventId" in dict(dead_letters(out)[0].headers)["waitline.error"].decode()


def test_dead_letter_keeps_original_headers(core: Core) -> None:
    record_headers = (("trace", b"t-1"),)
    from processors.correlation import InputRecord

    record = InputRecord(Source.EVENTS, b"a|b", b"nope", 0, 3, 41, record_headers)
    (dead,) = core.core.process(core.state, record)
    headers = dict(dead.headers)
    assert headers["trace"] == b"t-1"
    assert headers["waitline.source"] == b"events/3/41"


def test_invalid_registration_with_ids_gets_a_rejected_resume(core: Core) -> None:
    body = {"waitId": "w1", "runId": "r1", "name": "a", "correlationKey": "b", "timeout": "soon"}
    out = core.raw(Source.WAIT_COMMANDS, json.dumps(body).encode(), 0, b"a|b")
    assert len(dead_letters(out)) == 1
    assert [(r["waitId"], r["outcome"]) for r in resumes(out)] == [("w1", "rejected")]


def test_miskeyed_records(core: Core) -> None:
    event = {"eventId": "e", "name": "a", "correlationKey": "b"}
    out = core.raw(Source.EVENTS, json.dumps(event).encode(), 0, b"a|c")
    assert "mis-keyed" in dict(dead_letters(out)[0].headers)["waitline.error"].decode()
    reg = {"waitId": "w", "runId": "r", "name": "a", "correlationKey": "b", "timeout": "1s"}
    out = core.raw(Source.WAIT_COMMANDS, json.dumps(reg).encode(), 0, None)
    assert len(dead_letters(out)) == 1 and resumes(out)[0]["outcome"] == "rejected"


def test_too_large_and_empty_records(make_core: Callable[..., Core]) -> None:
    core = make_core(CoreSettings(max_record_bytes=100))
    out = core.event("a", "b", 0, data={"blob": "x" * 200})
    assert "exceeds the limit" in dict(dead_letters(out)[0].headers)["waitline.error"].decode()
    from processors.correlation import InputRecord

    (dead,) = core.core.process(core.state, InputRecord(Source.EVENTS, b"a|b", None, 0, 0, 1))
    assert dead.target is Target.DEAD_LETTERS


def test_resume_id_is_deterministic_across_replays(make_core: Callable[..., Core]) -> None:
    def run() -> list[bytes | None]:
        core = make_core()
        out = core.register("w1", "x", "k", 0) + core.event("x", "k", S)
        out += core.register("w2", "x", "k", 2 * S, timeout="1s") + core.fire_timers(5 * S)
        return [e.value for e in out]

    assert run() == run()


def test_purge_removes_expired_events_and_dedup_keys(core: Core) -> None:
    core.event("a", "k", 0, ttl="1s", idempotencyKey="i")
    assert core.core.purge(core.state, 500, 100) == 0
    assert core.core.purge(core.state, 25 * 3600 * S, 100) == 2  # event + dedup entry
    assert list(core.state.iter_buffered()) == []
    assert core.state.dedup_expiry("a", "i") is None
    assert make_key("a", "k") == b"a|k"


def test_lookback_applies_to_late_arriving_old_events(core: Core) -> None:
    core.register("w1", "signed", "d", 100 * S, lookback="10s")
    assert core.event("signed", "d", 101 * S, timestamp=50 * S) == []  # happened too long ago
    assert len(resumes(core.event("signed", "d", 102 * S, timestamp=95 * S))) == 1
