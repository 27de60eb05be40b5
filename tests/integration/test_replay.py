"""``waitline replay``: state rebuilt from the inputs equals the live run's, and the replay
writes nothing to the live topics.

The workload has matches (wait first, event first, and through a record a producer wrote to
the wrong partition), timeouts, cancels, duplicates (an idempotency key twice, a wait
registered again after it resolved) and dead letters (bad JSON, a mis-keyed event, a
registration rejected for a bad duration).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from harness import REPO, Stack

from waitline.cluster import ChangelogView
from waitline.logread import committed_offsets, end_offsets, offsets_at
from waitline.schemas.keys import make_key, partition_for

pytestmark = pytest.mark.integration

PARTITIONS = 8


def _cli(stack: Stack, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waitline", *args],
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _workload(stack: Stack, tag: str) -> set[str]:
    """Send the workload; return the waitIds that resolve."""
    c = stack.client
    resolving: set[str] = set()
    for i in range(4):  # the wait first, then the event (twice: one idempotency key)
        c.register_wait(
            f"{tag}/late-{i}", run_id=f"r-{tag}", name="paid", correlation_key=f"{tag}-{i}",
            timeout="10m",
        )  # fmt: skip
        resolving.add(f"{tag}/late-{i}")
    c.flush()
    for i in range(4):
        for _ in range(2):
            c.send_event("paid", f"{tag}-{i}", {"i": i}, idempotency_key=f"{tag}-pay-{i}")
    for i in range(3):  # the event first, then the wait
        c.send_event("shipped", f"{tag}-{i}", {"i": i})
    c.flush()
    for i in range(3):
        c.register_wait(
            f"{tag}/early-{i}", run_id=f"r-{tag}", name="shipped", correlation_key=f"{tag}-{i}",
            timeout="10m",
        )  # fmt: skip
        resolving.add(f"{tag}/early-{i}")
    for i in range(3):  # timeouts
        c.register_wait(
            f"{tag}/timeout-{i}", run_id=f"r-{tag}", name="never", correlation_key=f"{tag}-{i}",
            timeout="1s", on_timeout="continue",
        )  # fmt: skip
        resolving.add(f"{tag}/timeout-{i}")
    for i in range(3):  # cancels, one of them twice
        c.register_wait(
            f"{tag}/cancel-{i}", run_id=f"r-{tag}", name="approval", correlation_key=f"{tag}-{i}",
            timeout="10m",
        )  # fmt: skip
        c.cancel_wait(f"{tag}/cancel-{i}", name="approval", correlation_key=f"{tag}-{i}")
        resolving.add(f"{tag}/cancel-{i}")
    c.cancel_wait(f"{tag}/cancel-0", name="approval", correlation_key=f"{tag}-0")
    for i in range(2):  # still pending at the end
        c.register_wait(
            f"{tag}/pending-{i}", run_id=f"r-{tag}", name="later", correlation_key=f"{tag}-{i}",
            timeout="2h",
        )  # fmt: skip
    # A match through a record on the wrong partition (forwarded by the live worker).
    c.register_wait(
        f"{tag}/forwarded", run_id=f"r-{tag}", name="closed", correlation_key=tag, timeout="10m"
    )
    resolving.add(f"{tag}/forwarded")
    c.flush()
    key = make_key("closed", tag)
    wrong = (partition_for(key, PARTITIONS) + 1) % PARTITIONS
    event = {"eventId": f"e-{tag}-closed", "name": "closed", "correlationKey": tag}
    stack.produce_raw("events", key, json.dumps(event).encode(), partition=wrong)
    # Dead letters.
    stack.produce_raw("events", make_key("bad", tag), b"not json")
    miskeyed = {"eventId": f"e-{tag}-mis", "name": "paid", "correlationKey": tag}
    stack.produce_raw("events", make_key("paid", "someone-else"), json.dumps(miskeyed).encode())
    bad = {
        "waitId": f"{tag}/rejected", "runId": f"r-{tag}", "name": "paid",
        "correlationKey": tag, "timeout": "5 parsecs",
    }  # fmt: skip
    stack.produce_raw("wait-commands", make_key("paid", tag), json.dumps(bad).encode())
    resolving.add(f"{tag}/rejected")
    return resolving


def _resolve_again(stack: Stack, tag: str) -> None:
    """Register resolved waits again: the worker hands their resumes back (duplicates)."""
    for i in range(2):
        stack.client.register_wait(
            f"{tag}/late-{i}", run_id=f"r-{tag}", name="paid", correlation_key=f"{tag}-{i}",
            timeout="10m",
        )  # fmt: skip
    stack.client.flush()


def _settled(stack: Stack, timeout: float = 60) -> dict[str, dict[int, int]]:
    """Wait until the live group has committed every input partition's end (its state is in
    the changelog then); return the ends."""
    client = {"bootstrap.servers": stack.bootstrap}
    group = f"{stack.prefix}workers"
    topics = {"events": stack.topics.events.name, "wait-commands": stack.topics.wait_commands.name}
    deadline = time.monotonic() + timeout
    while True:
        ends = {role: end_offsets(client, t, range(PARTITIONS)) for role, t in topics.items()}
        done = True
        for role, topic in topics.items():
            committed = committed_offsets(client, group, topic, range(PARTITIONS))
            for p, end in ends[role].items():
                if end and (committed[p] or 0) < end:
                    done = False
        if done:
            return ends
        assert time.monotonic() < deadline, f"the live worker did not commit {ends}"
        time.sleep(0.5)  # polling the broker, not a settle delay


def _state(bootstrap: str, changelog: str) -> dict[str, Any]:
    """What a deployment's changelog says, by meaning (not by bytes: the live worker and the
    replay may interleave a partition's events and wait commands differently)."""
    with ChangelogView(
        {"bootstrap.servers": bootstrap}, changelog, list(range(PARTITIONS))
    ) as view:
        pending, buffered, resolved, dedup = set(), set(), {}, set()
        for _, state in view.states():
            for wait in state.iter_waits():
                pending.add((wait.wait_id, wait.run_id, wait.registered_at, wait.deadline))
            for pair, event in state.iter_buffered():
                body = json.loads(state.event_body(pair, event) or b"{}")
                buffered.add((pair, event.record_time, body.get("eventId")))
            for key, value in state.kv.scan(b"w", b"x"):
                if value[:1] == b"\0":  # a resolved wait's tombstone
                    resume = json.loads(value[9:])
                    event_id = (resume.get("event") or {}).get("eventId")
                    resolved[key[1:].decode()] = (resume["resumeId"], resume["outcome"], event_id)
            dedup.update(key for key, _ in state.kv.scan(b"d", b"e"))
        return {"pending": pending, "buffered": buffered, "resolved": resolved, "dedup": dedup}


def test_replay_from_the_beginning_equals_the_live_run(stack: Stack, uid: str) -> None:
    stack.start_worker()
    resolving = _workload(stack, uid)
    stack.await_resumes(resolving, timeout=120)
    _resolve_again(stack, uid)
    reader = stack.reader("resumes")
    reader.wait_for(
        lambda records: sum(1 for m in records if f"{uid}/late-".encode() in m.value()) >= 6,
        60,
        "the resumes handed back",
    )
    ends = _settled(stack)

    done = _cli(stack, "replay", "run", "--prefix", "r.", "--compare", "--json")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    out = json.loads(done.stdout)
    comparison, result = out["comparison"], out["result"]
    assert comparison["equal"], comparison
    assert comparison["same"] == len(resolving)
    assert comparison["leftOut"] == {"live": 0, "replay": 0}
    assert result["skippedMisrouted"] == 1  # left to the live worker's forwarded copy
    # The registrations again may meet their waits still pending in the replay (it reads a
    # partition's events and wait commands in another interleaving than the live worker did):
    # a no-op then instead of a resume handed back; the same outcomes either way.
    assert result["resumesReemitted"] <= 2
    assert result["outcomes"] == {
        "matched": 8, "timed_out": 3, "cancelled": 3, "rejected": 1
    }  # fmt: skip
    assert result["deadLetters"] == 3

    # Nothing written to the live inputs: no timer records, no forwarded copies.
    client = {"bootstrap.servers": stack.bootstrap}
    for role, topic in (
        ("events", stack.topics.events.name),
        ("wait-commands", stack.topics.wait_commands.name),
    ):
        assert end_offsets(client, topic, range(PARTITIONS)) == ends[role], role

    live = _state(stack.bootstrap, stack.topics.changelog.name)
    replayed = _state(stack.bootstrap, f"{stack.prefix}r.changelog")
    assert replayed == live
    assert {w[0] for w in live["pending"]} == {f"{uid}/pending-0", f"{uid}/pending-1"}

    # Running it again continues it: nothing new to read, the same comparison.
    again = _cli(stack, "replay", "run", "--prefix", "r.", "--compare", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["plan"]["continuing"] is True


def test_replay_from_a_time_starts_from_empty_state(stack: Stack, uid: str) -> None:
    stack.start_worker()
    before = _workload(stack, f"{uid}-a")
    stack.await_resumes(before, timeout=120)
    _settled(stack)
    start = int(time.time() * 1000) + 1
    time.sleep(0.01)  # the next records' times come after ``start`` (producer clocks)
    after = _workload(stack, f"{uid}-b")
    stack.await_resumes(after, timeout=120)
    _settled(stack)

    done = _cli(
        stack, "replay", "run", "--prefix", "t.", "--from-time", str(start), "--compare", "--json"
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    comparison = out["comparison"]
    assert comparison["equal"], comparison
    assert comparison["same"] == len(after)
    assert comparison["leftOut"]["live"] == len(before)  # registered before the start
    replayed = _state(stack.bootstrap, f"{stack.prefix}t.changelog")
    assert {w[0] for w in replayed["pending"]} == {f"{uid}-b/pending-0", f"{uid}-b/pending-1"}

    # A replay with state refuses a start point; discard removes it.
    refused = _cli(stack, "replay", "run", "--prefix", "t.", "--from-time", str(start))
    assert refused.returncode == 2 and "has state already" in refused.stderr
    gone = _cli(stack, "replay", "discard", "--prefix", "t.", "--yes")
    assert gone.returncode == 0, gone.stderr
    assert f"topic {stack.prefix}t.changelog" in gone.stdout
    topics = AdminClient({"bootstrap.servers": stack.bootstrap}).list_topics(timeout=30).topics
    assert f"{stack.prefix}t.changelog" not in topics
    assert not (stack.state_dir / f"t.{stack.prefix}workers").exists()


def test_a_time_is_found_by_record_times_when_the_broker_answers_wrong(
    kafka_bootstrap: str, unique_name: Any
) -> None:
    """offsets_for_times is taken only where the records on either side of its answer confirm
    it (the embedded broker answered 0 for records whose times a producer set in the past);
    otherwise the record times are read. Either way: the first record at or after the time."""
    topic = unique_name("times")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    base = int(time.time() * 1000) - 3_600_000
    for i in range(60):
        producer.produce(topic, b"v", b"k", partition=i % 2, timestamp=base + i * 1_000)
    producer.flush(10)
    client = {"bootstrap.servers": kafka_bootstrap}
    ends = end_offsets(client, topic, [0, 1])
    assert ends == {0: 30, 1: 30}
    found = offsets_at(client, topic, ends, base + 20_500)
    assert found.offsets == {0: 11, 1: 10}  # times base+22s and base+21s: the first at or after
    assert offsets_at(client, topic, ends, base + 3_600_000).offsets == ends
    assert offsets_at(client, topic, ends, 0).offsets == {0: 0, 1: 0}
