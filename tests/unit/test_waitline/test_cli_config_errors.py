"""Configuration mistakes, as a real process without a broker: one line, exit 2, no traceback.

Whatever the source (a ``WAITLINE_*`` variable, a flag, topics.yaml, what librdkafka refuses),
the mistake is reported before Kafka is contacted: nothing listens on 127.0.0.1:1, so a mistake
found late would come out as "cannot reach Kafka", exit 1. No secret appears in the output.
All the command lines run side by side, once; the tests read their results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
NO_KAFKA = ("--bootstrap-servers", "127.0.0.1:1", "--connect-timeout", "2")
SECRET = "hunter2-do-not-print"
SCRAM = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanisms": "SCRAM-SHA-256",
    "sasl.username": "waitline",
}
BAD_YAML = "topics:\n  events: {name: events\n"

# (environment, command line, what the line says); "{tmp}" is a scratch directory.
MISTAKES: list[tuple[dict[str, str], tuple[str, ...], str]] = [
    ({"WAITLINE_KAFKA": "{not json"}, ("send", "n", "k", *NO_KAFKA), "WAITLINE_KAFKA: not valid"),
    ({"WAITLINE_KAFKA": "[1]"}, ("worker", *NO_KAFKA), "WAITLINE_KAFKA: must be a JSON object"),
    (
        {"WAITLINE_KAFKA": json.dumps({"sasl.password": SECRET, "a": {"b": 1}})},
        ("topics", "create", *NO_KAFKA),
        "WAITLINE_KAFKA: 'a' must be a string, number or boolean",
    ),
    ({"WAITLINE_EVENT_TTL": "forever"}, ("worker", *NO_KAFKA), "WAITLINE_EVENT_TTL: bad duration"),
    ({"WAITLINE_PURGE_INTERVAL": "P1Y"}, ("worker", *NO_KAFKA), "WAITLINE_PURGE_INTERVAL"),
    ({"WAITLINE_METRICS_PORT": "abc"}, ("worker", *NO_KAFKA), "WAITLINE_METRICS_PORT: "),
    ({"WAITLINE_METRICS_PORT": "70000"}, ("worker", *NO_KAFKA), "WAITLINE_METRICS_PORT: "),
    ({"WAITLINE_PROCESSES": "two"}, ("worker", *NO_KAFKA), "WAITLINE_PROCESSES: "),
    ({"WAITLINE_GUARANTEE": "maybe_once"}, ("worker", *NO_KAFKA), "WAITLINE_GUARANTEE: "),
    ({"WAITLINE_LOG_FORMAT": "yaml"}, ("worker", *NO_KAFKA), "WAITLINE_LOG_FORMAT: "),
    ({"WAITLINE_GROUP_ID": ""}, ("worker", *NO_KAFKA), "WAITLINE_GROUP_ID: "),
    (
        {"WAITLINE_EVENT_TTL": "forever", "WAITLINE_DEDUP_WINDOW": "never"},
        ("worker", *NO_KAFKA),
        "WAITLINE_DEDUP_WINDOW: bad duration 'never'",  # every mistake, on one line
    ),
    ({}, ("worker", "--processes", "0", *NO_KAFKA), "--processes: "),
    ({"WAITLINE_TOPICS_FILE": "/nonexistent.yaml"}, ("worker", *NO_KAFKA), "not found"),
    (
        {"WAITLINE_MAX_RECORD_BYTES": "8000000"},
        ("worker", *NO_KAFKA),
        "max.message.bytes is 2097152 in the topics file, below the",
    ),
    ({"WAITLINE_MAX_CLOCK_SKEW": "soon"}, ("worker", *NO_KAFKA), "WAITLINE_MAX_CLOCK_SKEW: "),
    ({"WAITLINE_TOPICS_FILE": "/nonexistent.yaml"}, ("send", "n", "k", *NO_KAFKA), "not found"),
    (
        {},
        ("wait", "n", "k", "--timeout", "5s", "--topics-file", "/no.yaml", *NO_KAFKA),
        "not found",
    ),
    ({}, ("topics", "create", "--topics-file", "{tmp}/bad.yaml", *NO_KAFKA), "not valid YAML"),
    # What librdkafka refuses, before any connection: SCRAM without a password, and so on.
    (
        {"WAITLINE_KAFKA": json.dumps(SCRAM)},
        ("send", "n", "k", *NO_KAFKA),
        "sasl.username and sasl.password must be set",
    ),
    (
        {"WAITLINE_KAFKA": json.dumps({**SCRAM, "sasl.mechanisms": "ROT13"})},
        ("worker", *NO_KAFKA),
        "Unsupported SASL mechanism: ROT13",
    ),
    (
        {"WAITLINE_KAFKA": '{"no.such.setting": "1"}', "WAITLINE_SASL_PASSWORD": SECRET},
        ("topics", "create", *NO_KAFKA),
        "no.such.setting",
    ),
    # Flags: one line too, not argparse's usage block.
    ({}, ("inspect", "waits", "--limit", "-1"), "--limit: must be at least 1"),
    ({}, ("inspect", "waits", "--limit", "0"), "--limit: must be at least 1"),
    ({}, ("inspect", "events", "--limit", "many"), "--limit: not a whole number"),
    ({}, ("dev", "--port", "abc"), "--port: not a whole number"),
    ({}, ("dev", "--port", "70000"), "--port: must be a port number"),
    ({}, ("dev", "--workers", "-1"), "--workers: must be at least 0"),
    ({}, ("send", "n", "k", "--connect-timeout", "0"), "--connect-timeout: must be more than 0"),
    ({}, ("wait", "n", "k", "--timeout", "1s", "--wait-timeout", "-5"), "--wait-timeout"),
    # dev checks its settings before it starts a broker.
    ({"WAITLINE_EVENT_TTL": "forever"}, ("dev", "--port", "65000"), "WAITLINE_EVENT_TTL"),
]

Results = list[subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    tmp = tmp_path_factory.mktemp("config")
    (tmp / "bad.yaml").write_text(BAD_YAML)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WAITLINE_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "waitline", *(a.replace("{tmp}", str(tmp)) for a in args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**clean, "WAITLINE_STATE_DIR": str(tmp / "state"), **env},
        )
        for env, args, _ in MISTAKES
    ]
    done: Results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


def _id(case: tuple[dict[str, str], tuple[str, ...], str]) -> str:
    env, args, _ = case
    shown = " ".join(a for a in args if a not in NO_KAFKA)
    return " ".join([*(f"{k}={v[:20]}" for k, v in env.items()), shown])


@pytest.mark.parametrize("index", range(len(MISTAKES)), ids=[_id(c) for c in MISTAKES])
def test_a_configuration_mistake_is_one_line_and_exit_2(results: Results, index: int) -> None:
    result = results[index]
    says = MISTAKES[index][2]
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("waitline: error: "), lines[0]
    assert says in lines[0], lines[0]
    assert SECRET not in result.stderr + result.stdout
