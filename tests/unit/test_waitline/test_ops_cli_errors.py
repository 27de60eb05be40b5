"""The operator commands' mistakes, as real processes without a broker: one line on stderr,
exit 2 for what was typed (found before Kafka is contacted), 1 for an unreachable broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
NO_KAFKA = ("--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "1")

INPUT_MISTAKES = [
    (("replay", "run", "--prefix", "", *NO_KAFKA), "--prefix ''"),
    (("replay", "run", "--prefix", "a/b", *NO_KAFKA), "--prefix 'a/b'"),
    (("replay", "run", "--prefix", "r.", "--from-time", "soon", *NO_KAFKA), "--from-time"),
    (
        (
            "replay",
            "run",
            "--prefix",
            "r.",
            "--from-time",
            "1h",
            "--from-offsets",
            "events/0=1",
            *NO_KAFKA,
        ),
        "choose one",
    ),
    (("replay", "run", "--prefix", "r.", "--from-offsets", "resumes/0=1", *NO_KAFKA), "ROLE"),
    (("replay", "run", "--prefix", "r.", "--from-offsets", "events/0=x", *NO_KAFKA), "offset"),
    (("replay", "discard", "--prefix", "", *NO_KAFKA), "--prefix"),
    (("dead-letters", "show", "zero", *NO_KAFKA), "names no dead letter"),
    (("dead-letters", "list", "--since", "yesterday-ish", *NO_KAFKA), "--since"),
    (("dead-letters", "redrive", *NO_KAFKA), "--all"),
    (("dead-letters", "redrive", "3", "--edit", "/nonexistent.json", *NO_KAFKA), "--edit"),
    (("waits", "list", "--older-than", "a while", *NO_KAFKA), "--older-than"),
    (("waits", "cancel", *NO_KAFKA), "--all"),
    (("status", "--topics-file", "/nonexistent.yaml", *NO_KAFKA), "not found"),
]
UNREACHABLE = [
    ("replay", "run", "--prefix", "r.", *NO_KAFKA),
    ("dead-letters", "list", *NO_KAFKA),
    ("waits", "list", *NO_KAFKA),
    ("status", *NO_KAFKA),
]
HELP = [
    (*command, "--help")
    for command in [
        ("replay",),
        ("replay", "run"),
        ("replay", "compare"),
        ("replay", "discard"),
        ("dead-letters",),
        ("dead-letters", "list"),
        ("dead-letters", "show"),
        ("dead-letters", "redrive"),
        ("waits",),
        ("waits", "list"),
        ("waits", "events"),
        ("waits", "cancel"),
        ("status",),
    ]
]
ALL = [*(args for args, _ in INPUT_MISTAKES), *UNREACHABLE, *HELP]

Results = dict[tuple[str, ...], subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def results() -> Results:
    procs = {
        args: subprocess.Popen(
            [sys.executable, "-m", "waitline", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for args in ALL
    }
    done: Results = {}
    try:
        for args, proc in procs.items():
            out, err = proc.communicate(timeout=90)
            done[args] = subprocess.CompletedProcess(args, proc.returncode, out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


def _assert_one_error_line(result: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("waitline: error:"), lines[0]
    assert says in lines[0], lines[0]


def _id(args: tuple[str, ...]) -> str:
    return " ".join(a for a in args if a not in NO_KAFKA)


@pytest.mark.parametrize(("args", "says"), INPUT_MISTAKES, ids=[_id(a) for a, _ in INPUT_MISTAKES])
def test_input_mistakes_exit_2_with_one_line(
    results: Results, args: tuple[str, ...], says: str
) -> None:
    _assert_one_error_line(results[args], 2, says)


@pytest.mark.parametrize("args", UNREACHABLE, ids=_id)
def test_unreachable_kafka_exits_1_with_one_line(results: Results, args: tuple[str, ...]) -> None:
    _assert_one_error_line(results[args], 1, "cannot reach Kafka at 127.0.0.1:1")


@pytest.mark.parametrize("args", HELP, ids=_id)
def test_help(results: Results, args: tuple[str, ...]) -> None:
    result = results[args]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: waitline") and result.stderr == ""
