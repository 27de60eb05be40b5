"""SPEC §2 end to end: the SDK → Kafka → a real worker process → the resumes topic.

All tests in this module share one worker (``live_stack``) and use their own correlation keys.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME
from harness import Stack

from waitline.schemas.keys import make_key
from waitline.schemas.models import WaitRegistration

pytestmark = pytest.mark.integration


def test_event_after_wait_resumes_the_run(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    c.register_wait(
        f"{uid}/w",
        run_id=f"run-{uid}",
        name="order.paid",
        correlation_key=uid,
        timeout="5m",
        metadata={"step": 3},
    )
    c.flush()
    sent = c.send_event("order.paid", uid, {"amount": 12})
    c.flush()
    resume = live_stack.await_resume(f"{uid}/w")
    assert resume.outcome == "matched"
    assert resume.action == "continue"
    assert resume.run_id == f"run-{uid}"
    assert resume.event is not None and resume.event.event_id == sent.event_id
    assert resume.event.data == {"amount": 12}
    assert resume.metadata == {"step": 3}


def test_event_before_wait_is_buffered(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    sent = c.send_event("email.clicked", uid, {"link": "a"})
    c.flush()
    # The event must be processed before the wait: wait for a marker wait to resolve with it.
    c.register_wait(
        f"{uid}/marker", run_id="marker", name="email.clicked", correlation_key=uid, timeout="5m"
    )
    c.flush()
    live_stack.await_resume(f"{uid}/marker")
    c.register_wait(
        f"{uid}/late", run_id=f"run-{uid}", name="email.clicked", correlation_key=uid, timeout="5m"
    )
    c.flush()
    resume = live_stack.await_resume(f"{uid}/late")
    assert resume.outcome == "matched"
    assert resume.event is not None and resume.event.event_id == sent.event_id


def test_lookback_zero_ignores_earlier_events(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    c.send_event("doc.signed", uid, {"n": 1})
    c.register_wait(
        f"{uid}/marker", run_id="marker", name="doc.signed", correlation_key=uid, timeout="5m"
    )
    c.flush()
    live_stack.await_resume(f"{uid}/marker")  # the first event is buffered now
    c.register_wait(
        f"{uid}/new-only",
        run_id=f"run-{uid}",
        name="doc.signed",
        correlation_key=uid,
        timeout="5m",
        lookback="0",
    )
    c.flush()
    # A later event is the one that resumes it, proving the buffered one was passed over.
    second = c.send_event("doc.signed", uid, {"n": 2})
    c.flush()
    resume = live_stack.await_resume(f"{uid}/new-only")
    assert resume.event is not None and resume.event.event_id == second.event_id


@pytest.mark.parametrize("order", ["event-first", "registration-first"])
def test_lookback_zero_counts_record_times_of_skewed_producers(
    live_stack: Stack, uid: str, order: str
) -> None:
    """Where the broker keeps the producer's time (the embedded one), an event producer's
    clock sets its record's time, and lookback "0" counts from the registration's record:
    an event stamped 1.5 s after it (its own ``timestamp`` a relayed one, 10 minutes old)
    matches; one stamped 0.5 s before it does not, and the wait times out. The same whichever
    of the two records the worker reads first."""
    stack = live_stack
    registered = int(time.time() * 1000)  # the runner's clock
    cases = {  # correlation key: the event's record time, its own timestamp
        f"{uid}-ahead": (registered + 1_500, registered - 600_000),
        f"{uid}-behind": (registered - 500, registered - 500),
    }

    def produce(role: str, key: str, body: dict[str, Any], timestamp: int | None = None) -> None:
        value = json.dumps({"name": "skewed", "correlationKey": key, **body}).encode()
        stack.produce_raw(role, make_key("skewed", key), value, timestamp=timestamp)

    def registration(key: str, wait: str, **fields: Any) -> dict[str, Any]:
        return {"waitId": f"{key}/{wait}", "runId": f"run-{key}", "timeout": "5m", **fields}

    for key, (record_time, stamp) in cases.items():
        event = {"eventId": f"{key}-e", "timestamp": stamp}
        wait = registration(key, "w", lookback="0", timeout="3s", onTimeout="continue")
        if order == "event-first":
            produce("events", key, event, record_time)
            # A wait without lookback resolves with the event once the worker has read it.
            produce("wait-commands", key, registration(key, "marker"))
            marker = stack.await_resume(f"{key}/marker")
            assert marker.event is not None and marker.event.event_id == f"{key}-e"
            produce("wait-commands", key, wait, registered)
        else:
            produce("wait-commands", key, wait, registered)
            # Rejected after it on the same partition: the worker has read the registration.
            produce("wait-commands", key, registration(key, "probe", **{"if": "async.x >"}))
            assert stack.await_resume(f"{key}/probe").outcome == "rejected"
            produce("events", key, event, record_time)

    logged = stack.reader("events").wait_for(
        lambda records: sum(_is_one_of(m, cases) for m in records) == 2, 30, "the two events"
    )
    if any(m.timestamp()[0] != TIMESTAMP_CREATE_TIME for m in logged if _is_one_of(m, cases)):
        pytest.skip("this broker stamps its own append time: no producer clock shifts it")
    ahead = stack.await_resume(f"{uid}-ahead/w")
    assert ahead.outcome == "matched" and ahead.event is not None
    assert (ahead.event.event_id, ahead.event.timestamp) == (f"{uid}-ahead-e", registered - 600_000)
    behind = stack.await_resume(f"{uid}-behind/w")
    assert (behind.outcome, behind.action, behind.event) == ("timed_out", "continue", None)


def _is_one_of(msg: Any, keys: dict[str, Any]) -> bool:
    return msg.key() in {make_key("skewed", key) for key in keys}


def test_expired_event_is_not_matched(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    old = c.send_event("otp.sent", uid, {"n": 1}, ttl="2s")
    c.register_wait(
        f"{uid}/marker", run_id="marker", name="otp.sent", correlation_key=uid, timeout="5m"
    )
    c.flush()
    assert live_stack.await_resume(f"{uid}/marker").event.event_id == old.event_id  # buffered
    # A registration whose record time is 5 s later: the 2 s TTL has run out by then.
    registration = WaitRegistration(
        wait_id=f"{uid}/late",
        run_id=f"run-{uid}",
        name="otp.sent",
        correlation_key=uid,
        timeout="5m",
    )
    live_stack.produce_raw(
        "wait-commands",
        make_key("otp.sent", uid),
        registration.to_json(),
        timestamp=(old.timestamp or 0) + 5000,
    )
    fresh = c.send_event("otp.sent", uid, {"n": 2})
    c.flush()
    resume = live_stack.await_resume(f"{uid}/late")
    assert resume.event is not None and resume.event.event_id == fresh.event_id


def test_one_event_resumes_three_runs(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    ids = [f"{uid}/run-{i}" for i in range(3)]
    for i, wait_id in enumerate(ids):
        c.register_wait(
            wait_id, run_id=f"{uid}-run-{i}", name="deploy.done", correlation_key=uid, timeout="5m"
        )
    c.flush()
    c.send_event("deploy.done", uid)
    c.flush()
    found = live_stack.await_resumes(set(ids))
    assert {r.outcome for r in found.values()} == {"matched"}
    assert len({r.event.event_id for r in found.values() if r.event}) == 1


def test_two_hundred_keys_each_resumed_by_its_own_event(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    keys = [f"{uid}-{i}" for i in range(200)]
    for key in keys:
        c.register_wait(
            f"{key}/w",
            run_id=f"run-{key}",
            name="user.verified",
            correlation_key=key,
            timeout="10m",
        )
    c.flush()
    for key in keys:
        c.send_event("user.verified", key, {"key": key})
    c.flush()
    found = live_stack.await_resumes({f"{key}/w" for key in keys}, timeout=90)
    for key in keys:
        resume = found[f"{key}/w"]
        assert resume.outcome == "matched"
        assert resume.event is not None and resume.event.data == {"key": key}
        assert len(live_stack.resumes_for(f"{key}/w")) == 1


def test_duplicate_event_resumes_nothing_twice(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    c.send_event("payment.confirmed", uid, {"try": 1}, idempotency_key="pay-1")
    c.send_event("payment.confirmed", uid, {"try": 2}, idempotency_key="pay-1")
    c.flush()
    c.register_wait(
        f"{uid}/first", run_id="r1", name="payment.confirmed", correlation_key=uid, timeout="5m"
    )
    c.flush()
    first = live_stack.await_resume(f"{uid}/first")
    assert first.event is not None and first.event.data == {"try": 1}
    # The duplicate was dropped, not buffered: a lookback-0 wait sees nothing until a new event.
    c.register_wait(
        f"{uid}/second",
        run_id="r2",
        name="payment.confirmed",
        correlation_key=uid,
        timeout="5m",
        lookback="0",
    )
    c.send_event("payment.confirmed", uid, {"try": 3}, idempotency_key="pay-1")
    c.send_event("payment.confirmed", uid, {"try": 4}, idempotency_key="pay-2")
    c.flush()
    second = live_stack.await_resume(f"{uid}/second")
    assert second.event is not None and second.event.data == {"try": 4}


def test_reregistering_a_resolved_wait_reemits_the_same_resume(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    args = {"run_id": f"run-{uid}", "name": "invoice.sent", "correlation_key": uid, "timeout": "5m"}
    c.register_wait(f"{uid}/w", **args)
    c.send_event("invoice.sent", uid)
    c.flush()
    original = live_stack.await_resume(f"{uid}/w")
    c.register_wait(f"{uid}/w", **args)
    c.flush()
    live_stack.reader("resumes").wait_for(
        lambda _: len(live_stack.resumes_for(f"{uid}/w")) >= 2, 30, "the re-emitted resume"
    )
    again = live_stack.resumes_for(f"{uid}/w")
    assert all(r == original for r in again)
    assert len({r.resume_id for r in again}) == 1


def test_cancel(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    c.register_wait(
        f"{uid}/w", run_id=f"run-{uid}", name="approval.given", correlation_key=uid, timeout="5m"
    )
    c.cancel_wait(f"{uid}/w", name="approval.given", correlation_key=uid)
    c.flush()
    resume = live_stack.await_resume(f"{uid}/w")
    assert (resume.outcome, resume.action, resume.event) == ("cancelled", "cancel", None)
    # A later event changes nothing: one outcome per wait.
    c.send_event("approval.given", uid)
    c.register_wait(
        f"{uid}/after",
        run_id="later",
        name="approval.given",
        correlation_key=uid,
        timeout="5m",
        lookback="0",
    )
    c.send_event("approval.given", uid)
    c.flush()
    live_stack.await_resume(f"{uid}/after")
    assert [r.outcome for r in live_stack.resumes_for(f"{uid}/w")] == ["cancelled"]


@pytest.mark.parametrize(
    ("on_timeout", "action"), [("fail", "fail"), ("continue", "continue"), ("cancel", "cancel")]
)
def test_timeout_with_each_on_timeout(
    live_stack: Stack, uid: str, on_timeout: str, action: str
) -> None:
    c = live_stack.client
    c.register_wait(
        f"{uid}/w",
        run_id=f"run-{uid}",
        name="sms.replied",
        correlation_key=uid,
        timeout="1s",
        on_timeout=on_timeout,
    )  # type: ignore[arg-type]
    c.flush()
    resume = live_stack.await_resume(f"{uid}/w")
    assert resume.outcome == "timed_out"
    assert resume.action == action
    assert resume.event is None
    assert resume.resolved_at >= resume.registered_at + 1000


def test_cel_filter_true_and_false(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    expr = "async.data.userId == event.data.userId && async.data.amount > 100"
    c.register_wait(
        f"{uid}/big",
        run_id="big",
        name="purchase",
        correlation_key=uid,
        timeout="5m",
        if_=expr,
        context={"data": {"userId": "u1"}},
    )
    c.flush()
    small = c.send_event("purchase", uid, {"userId": "u1", "amount": 50})
    other = c.send_event("purchase", uid, {"userId": "u2", "amount": 500})
    big = c.send_event("purchase", uid, {"userId": "u1", "amount": 150})
    c.flush()
    resume = live_stack.await_resume(f"{uid}/big")
    assert resume.event is not None
    assert resume.event.event_id == big.event_id
    assert resume.event.event_id not in (small.event_id, other.event_id)
