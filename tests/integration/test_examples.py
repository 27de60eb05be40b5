"""Every example in examples/ runs as its README line says, against a live worker.

Each runs as a subprocess with the stack's ``WAITLINE_*`` settings and a deadline; the Node.js
producer skips when ``node`` or ``npm`` is missing, and fails if they are there but its
dependencies cannot be installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO, Stack

from waitline.schemas.keys import make_key, partition_for

pytestmark = pytest.mark.integration

EXAMPLES = REPO / "examples"
DEADLINE = 120  # seconds an example may take, group joins and a 5 s timeout included


def _run(stack: Stack, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, cwd=cwd, env=stack.env, capture_output=True, text=True, timeout=DEADLINE
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def test_the_readme_lists_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    examples = {p.name for p in EXAMPLES.glob("*.py")} | {"node-producer/produce.js"}
    for name in examples:
        assert f"]({name})" in readme, f"examples/README.md does not list {name}"


def test_email_verification(live_stack: Stack) -> None:
    out = _run(live_stack, sys.executable, "examples/email_verification.py").stdout
    assert "waiting for the email to be verified" in out
    assert '"GET /verify?user=' in out and " 200 " in out
    assert "email verified, account activated" in out
    assert out.rstrip().endswith("stopped")


def test_onboarding_drip(live_stack: Stack) -> None:
    out = _run(live_stack, sys.executable, "examples/onboarding_drip.py").stdout
    lines = out.splitlines()
    assert sum("matched, next: new_user_tips" in line for line in lines) == 1
    assert sum("timed_out, next: onboarding_nudge" in line for line in lines) == 2
    assert lines[-1] == "demo done"


def test_faust_orders(stack: Stack) -> None:
    pytest.importorskip("faust", reason="the faust extra is not installed")
    stack.start_worker()  # a stack of its own: it gets a record the harness cannot read
    # A record that is not a resume command: Faust logs that it cannot decode it, and goes on.
    stack.produce_raw("resumes", b"run-x", b"garbage")
    done = _run(stack, sys.executable, "examples/faust_orders.py", "--once")
    log = done.stdout + done.stderr  # a Faust worker logs what it prints
    assert log.count(", shipped") == 2
    assert log.count("timed_out, cancelled") == 1
    assert "demo done" in log
    assert "ValueDecodeError" in log
    # The events it sent from its agent went where waitline's producers would put them.
    events = stack.reader("events").wait_for(
        lambda records: sum(_name(m) == "order.shipped" for m in records) >= 2, 30, "shipped"
    )
    shipped = [m for m in events if _name(m) == "order.shipped"]
    partitions = stack.topics.events.partitions
    assert all(m.partition() == partition_for(m.key(), partitions) for m in shipped)


def test_node_producer(live_stack: Stack, uid: str) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js (node and npm) is not installed: the Node.js producer cannot run")
    project = EXAMPLES / "node-producer"
    if not (project / "node_modules" / "kafkajs").is_dir():
        _run(live_stack, npm, "ci", "--no-audit", "--no-fund", cwd=project)
    key = f"user:ü-{uid}"  # a non-ASCII key: the hash is over its UTF-8 bytes
    c = live_stack.client
    c.register_wait(
        f"{uid}/verify", run_id=f"run-{uid}", name="email.verified", correlation_key=key,
        timeout="5m",
    )  # fmt: skip
    c.flush()
    out = _run(
        live_stack, node, "produce.js", "email.verified", key, '{"via": "node"}', cwd=project
    )
    sent = json.loads(out.stdout.strip().splitlines()[-1])
    assert sent["topic"] == live_stack.topics.events.name
    assert sent["key"] == f"email.verified|{key}"
    wanted = partition_for(make_key("email.verified", key), live_stack.topics.events.partitions)
    assert sent["partition"] == wanted  # murmur2, as waitline's producers pick it
    resume = live_stack.await_resume(f"{uid}/verify")
    assert resume.outcome == "matched" and resume.event is not None
    assert resume.event.event_id == sent["eventId"]
    assert resume.event.data == {"via": "node"}


def _name(msg: object) -> str | None:
    try:
        value = json.loads(msg.value())  # type: ignore[attr-defined]
    except ValueError:
        return None
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else None
