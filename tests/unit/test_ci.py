"""The CI workflow (it runs on GitHub's runners only: here it is parsed, and checked against the
Makefile and the Kafka service it starts)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def _targets() -> set[str]:
    rules = re.findall(r"^([A-Za-z][\w-]*):(?!=)", (REPO / "Makefile").read_text(), re.M)
    return set(rules)


def _workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def _make_runs(job: dict[str, Any]) -> list[tuple[list[str], dict[str, str]]]:
    """Each ``make`` step of ``job``: its words and its environment."""
    runs = []
    for step in job["steps"]:
        words = shlex.split(step.get("run", ""))
        if words[:1] == ["make"]:
            runs.append((words, step.get("env", {})))
    return runs


def test_the_workflow_runs_on_push_and_pull_requests() -> None:
    workflow = _workflow()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    assert {job["runs-on"] for job in workflow["jobs"].values()} == {"ubuntu-latest"}


def test_every_make_step_names_a_target_that_exists() -> None:
    targets = _targets()
    steps = [words for job in _workflow()["jobs"].values() for words, _ in _make_runs(job)]
    assert steps
    for words in steps:
        named = [word for word in words[1:] if "=" not in word and not word.startswith("-")]
        assert named and set(named) <= targets, words


def test_the_suite_runs_as_make_test() -> None:
    runs = _make_runs(_workflow()["jobs"]["test"])
    assert [words for words, _ in runs] == [["make", "test"]]


def test_the_chaos_run_goes_against_the_kafka_service() -> None:
    job = _workflow()["jobs"]["chaos"]
    (kafka,) = job["services"].values()
    assert kafka["image"].startswith("apache/kafka:")
    host_port = kafka["ports"][0].split(":")[0]
    advertised = kafka["env"]["KAFKA_ADVERTISED_LISTENERS"]
    (run,) = _make_runs(job)
    words, env = run
    assert words == ["make", "chaos", "ARGS=--kill-during-rebalance --short"]
    assert env["WAITLINE_TEST_BOOTSTRAP"] == f"127.0.0.1:{host_port}"
    assert advertised.endswith(f"//{env['WAITLINE_TEST_BOOTSTRAP']}")
