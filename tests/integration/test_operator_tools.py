"""The operator commands against a live worker: dead letters (list, show, re-drive once), the
cluster-wide view of pending waits (list, bulk cancel, the single cancel's lookup), status."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import REPO, Stack

from waitline.schemas.keys import make_key

pytestmark = pytest.mark.integration


def _cli(stack: Stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waitline", *args],
        env={**stack.env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _eventually(check: Callable[[], Any], what: str, timeout: float = 45) -> Any:
    """``check()`` once it returns something true (the changelog follows the worker's outputs
    by a batch or so)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


def test_a_fixed_registration_is_redriven_once_and_matches(
    live_stack: Stack, uid: str, tmp_path: Path
) -> None:
    bad = {
        "waitId": f"{uid}/fix-me",
        "runId": f"run-{uid}",
        "name": "fix.me",
        "correlationKey": uid,
        "timeout": "5 parsecs",
    }
    live_stack.produce_raw(
        "wait-commands",
        make_key("fix.me", uid),
        json.dumps(bad).encode(),
        headers=[("trace", b"t-1")],
    )
    dead = live_stack.await_dead_letter(lambda m: f"{uid}/fix-me".encode() in m.value())
    offset = str(dead.offset())
    assert live_stack.await_resume(f"{uid}/fix-me").outcome == "rejected"

    listed = _lines(_cli(live_stack, "dead-letters", "list", "--reason", "PARSECS", "--json"))
    mine = [item for item in listed if item["offset"] == dead.offset()]
    assert len(mine) == 1 and mine[0]["source"].startswith("wait-commands/")
    assert mine[0]["redriven"] is None
    assert not _lines(_cli(live_stack, "dead-letters", "list", "--source", "events", "--json",
                           "--reason", uid))  # fmt: skip

    (shown,) = _lines(_cli(live_stack, "dead-letters", "show", offset, "--json"))
    assert "bad duration" in shown["reason"] and shown["problem"] is None
    assert ["trace", "t-1"] in shown["headers"]
    value = _cli(live_stack, "dead-letters", "show", offset, "--value")
    assert json.loads(value.stdout) == bad

    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({**bad, "timeout": "10m"}))
    first = _cli(live_stack, "dead-letters", "redrive", offset, "--edit", str(fixed))
    assert first.returncode == 0, first.stderr
    assert f"re-drove 0/{offset} to {live_stack.topics.wait_commands.name}/" in first.stdout
    assert "re-drove 1 dead letter" in first.stderr

    live_stack.client.send_event("fix.me", uid, {"fixed": True})
    live_stack.client.flush()
    live_stack.reader("resumes").wait_for(
        lambda _: any(r.outcome == "matched" for r in live_stack.resumes_for(f"{uid}/fix-me")),
        45,
        "the re-driven wait matched",
    )
    resent = live_stack.reader("wait-commands").wait_for(
        lambda records: any(
            (h[0], h[1]) == ("waitline.redriven-from", f"{dead.topic()}/0/{offset}".encode())
            for m in records
            for h in (m.headers() or [])
        ),
        30,
        "the re-driven record",
    )
    assert resent

    second = _cli(live_stack, "dead-letters", "redrive", offset, "--edit", str(fixed))
    assert second.returncode == 1
    assert f"skipped 0/{offset}: already re-driven" in second.stdout
    listed = _lines(_cli(live_stack, "dead-letters", "list", "--reason", "parsecs", "--json"))
    (mine,) = [item for item in listed if item["offset"] == dead.offset()]
    assert mine["redriven"]["state"] == "sent" and mine["redriven"]["edited"] is True


def test_waits_list_cancel_and_status_across_the_cluster(live_stack: Stack, uid: str) -> None:
    c = live_stack.client
    name = f"approval-{uid}"
    for i in range(4):
        c.register_wait(
            f"{uid}/w{i}", run_id=f"run-{uid}-{i}", name=name, correlation_key=f"acct-{i}",
            timeout="1h",
        )  # fmt: skip
    c.send_event(name, "acct-9", {"early": True})
    c.flush()

    def listed() -> list[dict[str, Any]]:
        return _lines(_cli(live_stack, "waits", "list", "--name", name, "--json"))

    waits = _eventually(lambda: (found := listed()) and len(found) == 4 and found, "4 waits")
    assert {w["waitId"] for w in waits} == {f"{uid}/w{i}" for i in range(4)}
    one = _lines(_cli(live_stack, "waits", "list", "--name", name, "--run-id", f"run-{uid}-2",
                      "--json"))  # fmt: skip
    assert [w["waitId"] for w in one] == [f"{uid}/w2"]
    assert not _lines(
        _cli(live_stack, "waits", "list", "--name", name, "--older-than", "1h", "--json")
    )
    events = _lines(_cli(live_stack, "waits", "events", "--name", name, "--json"))
    assert [e["event"]["correlationKey"] for e in events] == ["acct-9"]

    single = _cli(live_stack, "cancel", f"{uid}/w0", name, "acct-0")
    assert single.returncode == 0, single.stderr
    assert f"found: wait {uid}/w0 is pending on partition" in single.stderr

    bulk = _cli(live_stack, "waits", "cancel", "--name", name, "--key-prefix", "acct-", "--yes",
                "--json")  # fmt: skip
    cancelled = _lines(bulk)[0]
    # w0's cancel may not be in the changelog yet: it is cancelled again, a no-op.
    assert {f"{uid}/w{i}" for i in (1, 2, 3)} <= set(cancelled["waitIds"])
    resumes = live_stack.await_resumes({f"{uid}/w{i}" for i in range(4)})
    assert {r.outcome for r in resumes.values()} == {"cancelled"}

    _eventually(lambda: not listed(), "no pending wait left")
    again = _cli(live_stack, "cancel", f"{uid}/w0", name, "acct-0")
    assert f"not pending: wait {uid}/w0 resolved cancelled" in again.stderr
    unknown = _cli(live_stack, "cancel", f"{uid}/nope", name, "acct-0")
    assert "not found: no wait" in unknown.stderr

    (status,) = _lines(_cli(live_stack, "status", "--json"))
    assert status["group"] == f"{live_stack.prefix}workers"
    assert status["state"] == "stable"
    assert len(status["partitions"]) == 8
    for row in status["partitions"]:
        assert set(row["lag"]) == {"events", "wait-commands"}
        assert isinstance(row["pendingWaits"], int) and isinstance(row["bufferedEvents"], int)
    assert sum(row["bufferedEvents"] for row in status["partitions"]) >= 1
    table = _cli(live_stack, "status")
    assert table.returncode == 0 and "events lag" in table.stdout
