"""The CLI against a live worker: send, wait (follow the resume), cancel, topics, inspect."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from harness import REPO, Stack

pytestmark = pytest.mark.integration


def _cli(stack: Stack, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waitline", *args],
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_send_then_wait_prints_the_resume(live_stack: Stack, uid: str) -> None:
    sent = _cli(live_stack, "send", "email.verified", uid, "--data", '{"via": "link"}')
    assert sent.returncode == 0, sent.stderr
    event = json.loads(sent.stdout)
    waited = _cli(
        live_stack,
        "wait",
        "email.verified",
        uid,
        "--timeout",
        "5m",
        "--wait-timeout",
        "45",
        "--run-id",
        f"run-{uid}",
    )
    assert waited.returncode == 0, waited.stderr
    resume = json.loads(waited.stdout)
    assert resume["outcome"] == "matched"
    assert resume["event"]["eventId"] == event["eventId"]
    assert resume["runId"] == f"run-{uid}"


def test_wait_timeout_outcome_exits_3(live_stack: Stack, uid: str) -> None:
    waited = _cli(
        live_stack,
        "wait",
        "never.happens",
        uid,
        "--timeout",
        "1s",
        "--on-timeout",
        "continue",
        "--wait-timeout",
        "45",
    )
    assert waited.returncode == 3, waited.stderr
    assert json.loads(waited.stdout)["outcome"] == "timed_out"


def test_cancel_and_no_follow(live_stack: Stack, uid: str) -> None:
    registered = _cli(
        live_stack,
        "wait",
        "approval",
        uid,
        "--timeout",
        "1h",
        "--no-follow",
        "--wait-id",
        f"{uid}/w",
        "--run-id",
        f"run-{uid}",
    )
    assert registered.returncode == 0, registered.stderr
    cancelled = _cli(live_stack, "cancel", f"{uid}/w", "approval", uid)
    assert cancelled.returncode == 0, cancelled.stderr
    resume = live_stack.await_resume(f"{uid}/w")
    assert resume.outcome == "cancelled"


def test_topics_create_is_idempotent(live_stack: Stack) -> None:
    first = _cli(live_stack, "topics", "create")
    assert first.returncode == 0, first.stderr
    assert all(line.endswith("exists") for line in first.stdout.splitlines()), first.stdout
    assert len(first.stdout.splitlines()) == 5


def test_inspect_shows_pending_waits_and_buffered_events(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    c.register_wait(
        f"{uid}/pending", run_id=f"run-{uid}", name="inspect.me", correlation_key=uid, timeout="1h"
    )
    c.send_event("inspect.early", uid, {"n": 1})
    c.register_wait(
        f"{uid}/marker", run_id="m", name="inspect.early", correlation_key=uid, timeout="1h"
    )
    c.flush()
    live_stack.await_resume(f"{uid}/marker")  # applied; the state write follows the publish

    def inspect(*args: str) -> list[dict[str, object]]:
        result = _cli(live_stack, "inspect", *args, "--group-id", f"{live_stack.prefix}workers")
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    deadline = time.monotonic() + 30
    while True:
        waits = inspect("waits", "--key", uid)
        events = inspect("events", "--key", uid)
        if (waits and events) or time.monotonic() > deadline:
            break
    assert [w["waitId"] for w in waits] == [f"{uid}/pending"]
    assert [e["event"]["name"] for e in events] == ["inspect.early"]  # type: ignore[index]
    summary = _cli(live_stack, "inspect", "summary", "--group-id", f"{live_stack.prefix}workers")
    assert summary.returncode == 0 and "total" in summary.stdout


def _worker_on_a_recreated_topic(stack: Stack, topic: Any) -> subprocess.CompletedProcess[str]:
    """``waitline worker`` after ``topic`` (a NewTopic) replaced the stack's topic of its name."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    admin.delete_topics([topic.topic], operation_timeout=30)[topic.topic].result()
    admin.create_topics([topic])[topic.topic].result()
    return subprocess.run(
        [sys.executable, "-m", "waitline", "worker"],
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_worker_refuses_to_start_without_copartitioned_topics(stack: Stack) -> None:
    from confluent_kafka.admin import NewTopic

    name = stack.topics.wait_commands.name
    result = _worker_on_a_recreated_topic(stack, NewTopic(name, 3, 1))
    assert result.returncode != 0
    assert "co-partitioned" in result.stderr
    assert "Traceback" not in result.stderr


# -- SASL ------------------------------------------------------------------------------------

SCRAM = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanisms": "SCRAM-SHA-256",
    "sasl.username": "waitline",
}
PASSWORD = "scram-password-not-to-print"


def test_every_command_logs_in_with_the_password_from_the_environment(tmp_path: Path) -> None:
    """The documented SCRAM recipe: WAITLINE_KAFKA names the mechanism and user, and
    WAITLINE_SASL_PASSWORD the password, which every client gets (the broker probe too).

    Tansu 0.6.0 requires SCRAM with --authentication, but keeps its users in memory and creates
    none for a client that has not logged in (and without the flag refuses SASL), so no login
    can succeed here: each command gets past librdkafka's check that a password is set and runs
    SCRAM until the broker answers "unknown-user", in one line, without printing the password.
    A real login is for Apache Kafka (docs/operations.md, "Configuration and secrets")."""
    from waitline.broker import EmbeddedBroker

    clean = {k: v for k, v in os.environ.items() if not k.startswith("WAITLINE_")}
    commands = [
        ("topics", "create"),
        ("send", "n", "k"),
        ("wait", "n", "k", "--timeout", "5s", "--no-follow"),
        ("cancel", "w", "n", "k"),
        ("worker",),
    ]
    with EmbeddedBroker(authentication=True, log_path=tmp_path / "broker.log") as broker:
        env = {
            **clean,
            "WAITLINE_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "WAITLINE_KAFKA": json.dumps(SCRAM),
            "WAITLINE_SASL_PASSWORD": PASSWORD,
            "WAITLINE_STATE_DIR": str(tmp_path / "state"),
        }
        without_password = {k: v for k, v in env.items() if k != "WAITLINE_SASL_PASSWORD"}
        runs = [(command, env) for command in commands]
        runs.append((("send", "n", "k"), without_password))
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "waitline", *command, "--connect-timeout", "30"],
                env=run_env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for command, run_env in runs
        ]
        results = [proc.communicate(timeout=60) for proc in procs]
    for (command, run_env), proc, (out, err) in zip(runs, procs, results, strict=True):
        lines = [line for line in err.splitlines() if line.strip()]
        assert "Traceback" not in err and len(lines) == 1, (command, err)
        assert PASSWORD not in out + err, command
        if run_env is without_password:
            assert proc.returncode == 2, err
            assert "sasl.username and sasl.password must be set" in lines[0], lines[0]
        else:
            assert proc.returncode == 1, (command, err)
            assert "SASL SCRAM authentication failed" in lines[0], (command, lines[0])
            assert "unknown-user" in lines[0], (command, lines[0])


def test_worker_refuses_to_start_on_a_topic_the_broker_keeps_small(stack: Stack) -> None:
    """A topic created before topics.yaml set max.message.bytes would refuse the largest
    records waitline writes, and stop the partition then: the worker says so at start."""
    from confluent_kafka.admin import NewTopic

    name = stack.topics.resumes.name
    small = NewTopic(name, 8, 1, config={"max.message.bytes": "1048588"})
    result = _worker_on_a_recreated_topic(stack, small)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and f"topic {name}: the broker's max.message.bytes is 1048588" in lines[0]
    )


def test_ctrl_c_in_wait_leaves_the_wait_registered(
    live_stack: Stack, uid: str, tmp_path: Path
) -> None:
    """Ctrl-C while ``wait`` follows: exit 130 with one line, no traceback, and the cancel
    command it prints works."""
    wait_id = f"{uid}/interrupted"
    command = ["wait", "never.comes", uid, "--timeout", "1h", "--wait-id", wait_id]
    err_path = tmp_path / "wait.err"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "waitline", *command],
            env=live_stack.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        live_stack.reader("wait-commands").wait_for(
            lambda records: any(wait_id.encode() in (m.value() or b"") for m in records),
            timeout=60,
            what="the registration",
        )
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err_path.read_text().splitlines()
    assert proc.returncode == 130 and out == "", lines
    assert "Traceback" not in err_path.read_text()
    assert lines[-1].startswith("waitline: interrupted; the wait stays registered ("), lines
    cancel = lines[-1].split("(", 1)[1].removesuffix(" cancels it)")
    assert shlex.split(cancel)[:2] == ["waitline", "cancel"]
    cancelled = _cli(live_stack, *shlex.split(cancel)[1:])
    assert cancelled.returncode == 0, cancelled.stderr
    assert live_stack.await_resume(wait_id).outcome == "cancelled"
