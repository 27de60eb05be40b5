"""CLI mistakes: one line on stderr, a non-zero exit, never a traceback (no broker needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waitline", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["send", "n", "k", "--data", "{bad"], 2, "--data is not valid JSON"),
        (["send", "n", "k", "--data", "[1]"], 2, "must be a JSON object"),
        (["send", "n", "k", "--ttl", "later"], 2, "bad duration"),
        (["wait", "n", "k", "--timeout", "5x"], 2, "bad duration"),
        (["wait", "n", "k", "--timeout", "5s", "--if", "async."], 2, "--if does not compile"),
        (["wait", "n", "k", "--timeout", "5s", "--metadata", "{"], 2, "--metadata"),
        (
            ["send", "n", "k", "--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "2"],
            1,
            "cannot reach Kafka at 127.0.0.1:1",
        ),
        (["topics", "create", "--topics-file", "/nonexistent.yaml"], 2, "topics file not found"),
        (["inspect", "waits", "--state-dir", "/nonexistent"], 2, "no state under"),
    ],
)
def test_mistakes_print_one_line(args: list[str], code: int, says: str) -> None:
    result = _run(*args)
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("waitline: error:") and says in lines[0]
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2() -> None:
    result = _run("wait", "n", "k")  # --timeout is required
    assert result.returncode == 2
    assert "--timeout" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [[], ["dev"], ["worker"], ["topics", "create"], ["send"], ["wait"], ["cancel"], ["inspect"]],
)
def test_help(command: list[str]) -> None:
    result = _run(*command, "--help")
    assert result.returncode == 0 and "usage: waitline" in result.stdout
