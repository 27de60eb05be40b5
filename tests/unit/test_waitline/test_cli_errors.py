"""CLI mistakes, as a real process without a broker: one line on stderr, an exit code, never
a traceback. Exit codes: 2 a usage or input mistake, 1 a runtime failure (no Kafka).

Every command line below runs once, all of them side by side (each is a fresh interpreter
that mostly waits on imports or on a connect timeout), and the tests read their results.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
NO_KAFKA = ("--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "2")
QUICK_NO_KAFKA = ("--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "1")

INPUT_MISTAKES = [
    (("send", "n", "k", "--data", "{bad", *NO_KAFKA), "--data is not valid JSON"),
    (("send", "n", "k", "--data", "[1]", *NO_KAFKA), "--data must be a JSON object"),
    (("send", "n", "k", "--ttl", "later", *NO_KAFKA), "bad duration"),
    (("wait", "n", "k", "--timeout", "5x", *NO_KAFKA), "bad duration"),
    (("wait", "n", "k", "--timeout", "P1Y", *NO_KAFKA), "years and months"),
    (("wait", "n", "k", "--timeout", "5s", "--if", "async.", *NO_KAFKA), "--if does not compile"),
    (("wait", "n", "k", "--timeout", "5s", "--metadata", "{", *NO_KAFKA), "--metadata"),
    (("wait", "n", "k", "--timeout", "5s", "--context", "[1]", *NO_KAFKA), "--context must be"),
    (("wait", "n", "k", "--timeout", "5s", "--lookback", "recent", *NO_KAFKA), "--lookback"),
    (("topics", "create", "--topics-file", "/nonexistent.yaml", *NO_KAFKA), "not found"),
    (("inspect", "waits", "--state-dir", "/nonexistent"), "no state under"),
    (("worker", "--processes", "0", *NO_KAFKA), "--processes: "),
]
UNREACHABLE = [
    ("send", "n", "k", *NO_KAFKA),
    ("wait", "n", "k", "--timeout", "5s", *QUICK_NO_KAFKA),
    ("cancel", "w", "n", "k", *QUICK_NO_KAFKA),
]
BAD_NAME = ("send", "a|b", "k", *QUICK_NO_KAFKA)
ABSURD_DURATION = ("wait", "n", "k", "--timeout", "9" * 400 + "s", *QUICK_NO_KAFKA)
MISSING_TIMEOUT = ("wait", "n", "k")
UNKNOWN_COMMAND = ("explode",)
HELP = [
    (*command, "--help")
    for command in [
        (),
        ("dev",),
        ("worker",),
        ("topics",),
        ("topics", "create"),
        ("send",),
        ("wait",),
        ("cancel",),
        ("inspect",),
    ]
]
ALL = [
    *(args for args, _ in INPUT_MISTAKES),
    *UNREACHABLE,
    BAD_NAME,
    ABSURD_DURATION,
    MISSING_TIMEOUT,
    UNKNOWN_COMMAND,
    *HELP,
]

Results = dict[tuple[str, ...], subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def results() -> Results:
    procs = {
        args: subprocess.Popen(
            [sys.executable, "-m", "waitline", *args],
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
            out, err = proc.communicate(timeout=60)
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
    """The command line without its connection options."""
    return " ".join(a for a in args if a not in NO_KAFKA + QUICK_NO_KAFKA)


@pytest.mark.parametrize(("args", "says"), INPUT_MISTAKES, ids=[_id(a) for a, _ in INPUT_MISTAKES])
def test_input_mistakes_exit_2_with_one_line(
    results: Results, args: tuple[str, ...], says: str
) -> None:
    # Each is caught before Kafka is contacted: nothing listens on 127.0.0.1:1, so a mistake
    # reported late would come out as "cannot reach Kafka", exit 1.
    _assert_one_error_line(results[args], 2, says)


@pytest.mark.parametrize("args", UNREACHABLE, ids=_id)
def test_unreachable_kafka_exits_1_with_one_line(results: Results, args: tuple[str, ...]) -> None:
    _assert_one_error_line(results[args], 1, "cannot reach Kafka at 127.0.0.1:1")


def test_a_bad_name_is_an_input_mistake_not_a_broker_failure(results: Results) -> None:
    """A name with `|` is a mistake in what the user typed (exit 2, and it says so). The CLI
    connects to Kafka before it builds the event, so without a broker the user is told
    "cannot reach Kafka" (exit 1) and never learns what is wrong with the input."""
    _assert_one_error_line(results[BAD_NAME], 2, "must not contain")


def test_an_absurd_duration_is_an_input_mistake_not_a_traceback(results: Results) -> None:
    # parse_duration overflows a float on 400 digits and raises OverflowError, not
    # DurationError, which the CLI does not catch.
    _assert_one_error_line(results[ABSURD_DURATION], 2, "--timeout")


def test_usage_errors_exit_2(results: Results) -> None:
    missing = results[MISSING_TIMEOUT]
    assert missing.returncode == 2
    assert "--timeout" in missing.stderr and "Traceback" not in missing.stderr
    unknown = results[UNKNOWN_COMMAND]
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


@pytest.mark.parametrize("args", HELP, ids=_id)
def test_help(results: Results, args: tuple[str, ...]) -> None:
    result = results[args]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: waitline") and result.stderr == ""


def test_worker_refuses_state_in_an_older_layout(tmp_path: Path) -> None:
    """A store written by a build with another state layout (processors.state) cannot be read:
    the worker says so before it contacts Kafka, and inspect too, instead of misreading it."""
    from rocksdict import Options, Rdict

    old = Rdict(str(tmp_path / "g" / "partition-0"), Options(raw_mode=True))
    old.put(b"moffsets", b'{"events": 1}')  # processed something, in layout 1
    old.close()
    for args in (
        ("worker", "--state-dir", str(tmp_path), "--group-id", "g", *NO_KAFKA),
        ("inspect", "summary", "--state-dir", str(tmp_path), "--group-id", "g"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "waitline", *args], capture_output=True, text=True, cwd=REPO
        )
        _assert_one_error_line(result, 2, "older layout")
