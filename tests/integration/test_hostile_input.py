"""Records any producer or runner can write, sent to a running worker to stop it: after each,
the same partition still resolves a fresh wait, and a restarted worker finds nothing to die on.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from harness import Stack

from waitline.schemas.keys import make_key, partition_for

pytestmark = pytest.mark.integration

MIB = 1_048_576
YEAR_3000 = 32_503_680_000_000
Attack = Callable[[Stack, str], None]


def _key_on(stack: Stack, partition: int, name: str, prefix: str) -> str:
    """A correlation key whose pair (``name``, key) lives on ``partition``."""
    count = stack.topics.events.partitions
    for n in itertools.count():
        key = f"{prefix}-{n}"
        if partition_for(make_key(name, key), count) == partition:
            return key
    raise AssertionError("unreachable")


def _partition(stack: Stack, name: str, key: str) -> int:
    return partition_for(make_key(name, key), stack.topics.events.partitions)


def _still_serving(stack: Stack, uid: str, timeout: float = 30.0) -> None:
    """A fresh wait and event on every partition resolve ``matched`` within ``timeout``."""
    c = stack.client
    waits = set()
    for partition in range(stack.topics.events.partitions):
        key = _key_on(stack, partition, "probe", f"{uid}-{time.monotonic_ns()}")
        wait_id = f"{uid}/probe-{key}"
        c.register_wait(
            wait_id, run_id=f"run-{uid}", name="probe", correlation_key=key, timeout="5m"
        )
        c.send_event("probe", key)
        waits.add(wait_id)
    c.flush()
    resumes = stack.await_resumes(waits, timeout)
    assert {r.outcome for r in resumes.values()} == {"matched"}
    assert all(w.alive() for w in stack.workers if w is stack.workers[-1]), stack.workers[-1].log()


def _registration(uid: str, name: str, key: str, **fields: Any) -> dict[str, Any]:
    return {
        "waitId": f"{uid}/w",
        "runId": f"run-{uid}",
        "name": name,
        "correlationKey": key,
        "timeout": "1h",
        **fields,
    }


def _reason(msg: Any) -> str:
    return str(dict(msg.headers() or [])["waitline.error"].decode())


def _dead_letter_of(stack: Stack, key: bytes, timeout: float = 30.0) -> Any:
    return stack.await_dead_letter(lambda m: m.key() == key, timeout)


# -- the attacks: each sends its records, then checks what it must have caused -----------------


def big_valid_event(stack: Stack, uid: str) -> None:
    """1.02 MB, valid: over the input limit, dead-lettered as a reference."""
    event = {"eventId": uid, "name": "big", "correlationKey": uid, "data": {"b": "x" * 1_070_000}}
    key = make_key("big", uid)
    stack.produce_raw("events", key, json.dumps(event).encode())
    dead = _dead_letter_of(stack, key)
    assert dead.value() is None and "exceeds the limit" in _reason(dead)


def big_garbage_event(stack: Stack, uid: str) -> None:
    key = make_key("big", uid)
    stack.produce_raw("events", key, b"\xff" * 1_070_000)
    assert "exceeds the limit" in _reason(_dead_letter_of(stack, key))


def big_registration(stack: Stack, uid: str) -> None:
    """A registration over the limit: dead-lettered, and its runner told."""
    body = _registration(uid, "big", uid, context={"b": "x" * 1_070_000})
    stack.produce_raw("wait-commands", make_key("big", uid), json.dumps(body).encode())
    resume = stack.await_resume(f"{uid}/w")
    assert resume.outcome == "rejected" and "exceeds the limit" in (resume.error or "")


def garbage_just_under_the_limit(stack: Stack, uid: str) -> None:
    """A dead letter that is a whole copy of a record near 1 MiB, with headers."""
    key = make_key("near", uid)
    value = b"{" * (MIB - 20_000)
    stack.produce_raw("events", key, value, headers=[("h", b"v" * 10_000)])
    dead = _dead_letter_of(stack, key)
    assert dead.value() == value and "invalid event" in _reason(dead)


def large_event_and_metadata_in_one_resume(stack: Stack, uid: str) -> None:
    """A resume carrying an event near 1 MiB plus 60 KiB of metadata."""
    c = stack.client
    c.register_wait(
        f"{uid}/w",
        run_id=f"run-{uid}",
        name="large",
        correlation_key=uid,
        timeout="5m",
        metadata={"m": "y" * 60_000},
    )
    c.flush()
    event = {"eventId": uid, "name": "large", "correlationKey": uid, "data": {"b": "x" * 1_000_000}}
    stack.produce_raw("events", make_key("large", uid), json.dumps(event).encode())
    resume = stack.await_resume(f"{uid}/w")
    assert resume.outcome == "matched" and resume.event is not None
    assert len(resume.event.data["b"]) == 1_000_000


def forged_timers(stack: Stack, uid: str) -> None:
    """Timer records written by a client do not time a one-hour wait out."""
    key = make_key("pay", uid)
    registered = int(time.time() * 1000)
    body = _registration(uid, "pay", uid)
    stack.produce_raw("wait-commands", key, json.dumps(body).encode(), timestamp=registered)
    deadline = registered + 3_600_000
    timer = {"type": "timer", "waitId": f"{uid}/w", "name": "pay", "correlationKey": uid}
    # Stamped now (before the deadline); stamped at the deadline (far ahead of the clock).
    for stamp in (None, deadline):
        value = json.dumps({**timer, "deadline": deadline}).encode()
        stack.produce_raw("wait-commands", key, value, timestamp=stamp)
    assert "ahead of the worker's clock" in _reason(_dead_letter_of(stack, key))
    stack.client.send_event("pay", uid)
    stack.client.flush()
    assert stack.await_resume(f"{uid}/w").outcome == "matched"


def year_3000(stack: Stack, uid: str) -> None:
    key = make_key("future", uid)
    body = _registration(uid, "future", uid)
    stack.produce_raw("wait-commands", key, json.dumps(body).encode(), timestamp=YEAR_3000)
    resume = stack.await_resume(f"{uid}/w")
    assert resume.outcome == "rejected" and "ahead of the worker's clock" in (resume.error or "")
    # An event's own timestamp is data (windows count from its record's time): it matches,
    # and the resume carries the year 3000 as sent.
    again = _registration(uid, "future", uid, waitId=f"{uid}/w2")
    stack.produce_raw("wait-commands", key, json.dumps(again).encode())
    event = {"eventId": uid, "name": "future", "correlationKey": uid, "timestamp": YEAR_3000}
    stack.produce_raw("events", key, json.dumps(event).encode())
    resume = stack.await_resume(f"{uid}/w2")
    assert resume.outcome == "matched" and resume.event is not None
    assert resume.event.timestamp == YEAR_3000


def cancel_naming_another_pair(stack: Stack, uid: str) -> None:
    partition = _partition(stack, "order", uid)
    other = _key_on(stack, partition, "order", f"{uid}-other")
    c = stack.client
    c.register_wait(
        f"{uid}/w", run_id=f"run-{uid}", name="order", correlation_key=uid, timeout="5m"
    )
    c.cancel_wait(f"{uid}/w", name="order", correlation_key=other)
    c.send_event("order", uid)
    c.flush()
    assert stack.await_resume(f"{uid}/w").outcome == "matched"


def unreadable_registrations_with_ids(stack: Stack, uid: str) -> None:
    key = make_key("odd", uid)
    head = f'{{"waitId":"{uid}/w","runId":"run-{uid}","name":"odd","correlationKey":"{uid}",'
    nested = (head + '"timeout":"1h","context":').encode() + b"[" * 10_000 + b"]" * 10_000 + b"}"
    stack.produce_raw("wait-commands", key, nested)
    assert stack.await_resume(f"{uid}/w").outcome == "rejected"
    head = head.replace(f"{uid}/w", f"{uid}/w2")
    not_utf8 = (head + '"timeout":"1h","context":{"s":"').encode() + b'\xff\xfe"}}'
    stack.produce_raw("wait-commands", key, not_utf8)
    assert stack.await_resume(f"{uid}/w2").outcome == "rejected"


def non_finite_numbers(stack: Stack, uid: str) -> None:
    key = make_key("nan", uid)
    for n, literal in enumerate((b"NaN", b"Infinity", b"1e400")):
        value = f'{{"eventId":"{uid}-{n}","name":"nan","correlationKey":"{uid}","data":{{"x":'
        stack.produce_raw("events", key, value.encode() + literal + b"}}")
    reader = stack.reader("dead-letters")
    reader.wait_for(lambda records: sum(m.key() == key for m in records) == 3, 30, "3 letters")
    assert all("NaN or an infinite" in _reason(m) for m in reader.records if m.key() == key)


def forged_dead_letter_headers(stack: Stack, uid: str) -> None:
    key = make_key("hdr", uid)
    headers = [("waitline.error", b"forged"), ("waitline.source", b"forged"), ("none", None)]
    stamp = int(time.time() * 1000) - 3_600_000
    stack.produce_raw("events", key, b"garbage", headers=headers, timestamp=stamp)
    dead = _dead_letter_of(stack, key)
    names = [name for name, _ in dead.headers()]
    assert names.count("waitline.error") == names.count("waitline.source") == 1
    assert dict(dead.headers())["none"] is None
    assert dead.timestamp()[1] == stamp


def forwarded_garbage(stack: Stack, uid: str) -> None:
    key = make_key("fwd", uid)
    right = _partition(stack, "fwd", uid)
    wrong = (right + 1) % stack.topics.events.partitions
    stack.produce_raw("events", key, b"garbage", partition=wrong)
    dead = _dead_letter_of(stack, key)
    headers = dict(dead.headers())
    assert headers["waitline.origin"].decode().startswith(f"events/{wrong}/")
    assert headers["waitline.source"].decode().startswith(f"events/{right}/")


def hostile_keys(stack: Stack, uid: str) -> None:
    event = json.dumps({"eventId": uid, "name": "k", "correlationKey": uid}).encode()
    stack.produce_raw("events", None, event)
    stack.produce_raw("events", b"k|" + b"z" * 900_000, event)
    stack.produce_raw("events", b"\xff\x00|", event)
    reader = stack.reader("dead-letters")
    reader.wait_for(
        lambda records: sum(m.value() == event for m in records) == 3, 30, "3 mis-keyed letters"
    )


def hot_pair(stack: Stack, uid: str) -> None:
    """30,000 events for one pair, then 20,000 waits on it resolved by one event."""
    c = stack.client
    for n in range(30_000):
        c.send_event("hot", uid, event_id=f"{uid}-{n}", ttl="0")
    waits = {f"{uid}/w{n}" for n in range(20_000)}
    for wait_id in sorted(waits):
        c.register_wait(wait_id, run_id=f"run-{uid}", name="hot", correlation_key=uid, timeout="5m")
    c.flush()
    c.send_event("hot", uid, {"last": True})
    c.flush()
    resumes = stack.await_resumes(waits, 180)
    assert {r.outcome for r in resumes.values()} == {"matched"}


def costly_filters(stack: Stack, uid: str) -> None:
    doubling = "[async.data.s]" + ".map(x, x + x)" * 40 + ".size() > 0"
    quadratic = "event.xs.exists(a, a in event.xs)"
    c = stack.client
    for n, expression in enumerate((doubling, quadratic, "true // )")):
        c.register_wait(
            f"{uid}/f{n}",
            run_id=f"run-{uid}",
            name="filtered",
            correlation_key=uid,
            timeout="5m",
            if_=expression,
            context={"xs": list(range(5000))} if n == 1 else None,
        )
    c.flush()
    assert stack.await_resume(f"{uid}/f0").outcome == "rejected"
    assert stack.await_resume(f"{uid}/f1").outcome == "rejected"
    c.send_event("filtered", uid)
    c.flush()
    assert stack.await_resume(f"{uid}/f2").outcome == "matched"  # a comment hides nothing


ATTACKS: list[Attack] = [
    big_valid_event,
    big_garbage_event,
    big_registration,
    garbage_just_under_the_limit,
    large_event_and_metadata_in_one_resume,
    forged_timers,
    year_3000,
    cancel_naming_another_pair,
    unreadable_registrations_with_ids,
    non_finite_numbers,
    forged_dead_letter_headers,
    forwarded_garbage,
    hostile_keys,
    hot_pair,
    costly_filters,
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.__name__ for a in ATTACKS])
def test_the_worker_keeps_serving_after(live_stack: Stack, uid: str, attack: Attack) -> None:
    attack(live_stack, uid)
    _still_serving(live_stack, uid)


def test_a_restarted_worker_finds_nothing_to_die_on(live_stack: Stack, uid: str) -> None:
    """Killed right after hostile records arrive, the worker reads them again on restart; with
    its state gone, it restores the state they left from the changelog."""
    (worker,) = [w for w in live_stack.workers if w.alive()]
    # Sent, not awaited: the kill may come before, during or after the batch that holds them.
    key = make_key("again", uid)
    live_stack.produce_raw("events", key, b"\xff" * 1_070_000)
    body = _registration(uid, "again", uid, context={"n": [[[]]]})
    live_stack.produce_raw("wait-commands", key, json.dumps(body).encode(), timestamp=YEAR_3000)
    nested = json.dumps(_registration(uid, "again", uid, waitId=f"{uid}/w2")).encode()
    live_stack.produce_raw("wait-commands", key, nested[:-1] + b',"x":' + b"[" * 10_000 + b"}")
    worker.stop(signal.SIGKILL)
    restarted = live_stack.start_worker()
    _still_serving(live_stack, uid, timeout=90)
    restarted.stop()
    shutil.rmtree(live_stack.state_dir)
    restored = live_stack.start_worker()
    _still_serving(live_stack, uid, timeout=90)
    assert restored.alive()
    for process in (restarted, restored):
        assert "Traceback" not in process.log(), process.log()
