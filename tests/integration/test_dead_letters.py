"""SPEC §2.7: bad input goes to the dead-letter topic with its reason; the worker keeps serving."""

from __future__ import annotations

import json

import pytest
from harness import Stack

from waitline.schemas.keys import make_key
from waitline.schemas.models import ResumeCommand

pytestmark = pytest.mark.integration


def _reason(msg: object) -> str:
    headers = dict(msg.headers() or [])  # type: ignore[attr-defined]
    return headers["waitline.error"].decode()


def test_bad_records_are_dead_lettered_and_the_worker_keeps_serving(
    live_stack: Stack, uid: str
) -> None:
    garbage = f"not json {uid}".encode()
    live_stack.produce_raw("events", make_key("x", uid), garbage, headers=[("trace", b"t-1")])
    event = {"eventId": f"e-{uid}", "name": "order.paid", "correlationKey": uid, "data": {}}
    miskeyed = json.dumps(event).encode()
    live_stack.produce_raw("events", make_key("order.paid", "someone-else"), miskeyed)
    bad_if = json.dumps(
        {
            "waitId": f"{uid}/bad-if",
            "runId": f"run-{uid}",
            "name": "order.paid",
            "correlationKey": uid,
            "timeout": "5m",
            "if": "async.data.amount >",
        }
    )
    live_stack.produce_raw("wait-commands", make_key("order.paid", uid), bad_if.encode())

    dead = live_stack.await_dead_letter(lambda m: m.value() == garbage)
    assert "invalid event" in _reason(dead)
    assert (b"t-1") in dict(dead.headers())["trace"]  # original headers kept

    dead = live_stack.await_dead_letter(lambda m: m.value() == miskeyed)
    assert "mis-keyed" in _reason(dead)

    dead = live_stack.await_dead_letter(lambda m: m.value() == bad_if.encode())
    assert "does not compile" in _reason(dead)
    rejected = live_stack.await_resume(f"{uid}/bad-if")
    assert isinstance(rejected, ResumeCommand)
    assert (rejected.outcome, rejected.action) == ("rejected", "fail")
    assert rejected.error is not None and "does not compile" in rejected.error

    # Still serving: a normal wait resolves after the bad records.
    c = live_stack.client
    c.register_wait(
        f"{uid}/ok", run_id=f"run-{uid}", name="order.paid", correlation_key=uid, timeout="5m"
    )
    c.send_event("order.paid", uid)
    c.flush()
    assert live_stack.await_resume(f"{uid}/ok").outcome == "matched"
    assert all(w.alive() for w in live_stack.workers)


def test_record_on_the_wrong_partition_is_forwarded(live_stack: Stack, uid: str) -> None:
    """A producer with another partitioner (librdkafka's default CRC32) loses nothing."""
    c = live_stack.client
    partitions = live_stack.topics.events.partitions
    key = make_key("ticket.closed", uid)
    from waitline.schemas.keys import partition_for

    wrong = (partition_for(key, partitions) + 1) % partitions
    c.register_wait(
        f"{uid}/w", run_id=f"run-{uid}", name="ticket.closed", correlation_key=uid, timeout="5m"
    )
    c.flush()
    event = {"eventId": f"e-{uid}", "name": "ticket.closed", "correlationKey": uid}
    live_stack.produce_raw("events", key, json.dumps(event).encode(), partition=wrong)
    resume = live_stack.await_resume(f"{uid}/w")
    assert resume.event is not None and resume.event.event_id == f"e-{uid}"
