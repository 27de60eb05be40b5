"""docker-compose.yml, the Dockerfile and .dockerignore, as a Docker user runs them as they are.

The structural checks always run (YAML, no Docker needed); ``docker compose config`` validates
the file against the Compose specification where a compose client is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _compose_client() -> list[str] | None:
    """``docker compose`` (the plugin) or ``docker-compose``, whichever answers."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            version = subprocess.run(
                [*command, "version"], capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if version.returncode == 0:
            return command
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    client = _compose_client()
    if client is None:
        pytest.skip("no compose client here (neither the docker compose plugin nor docker-compose)")
    checked = subprocess.run(
        [*client, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_one_image_is_built_and_both_waitline_services_run_it() -> None:
    services = _compose()["services"]
    builders = [name for name, service in services.items() if "build" in service]
    assert builders == ["worker"]
    image = services["worker"]["image"]
    assert services["topics"]["image"] == image


def test_the_worker_is_healthy_when_ready() -> None:
    worker = _compose()["services"]["worker"]
    port = worker["environment"]["WAITLINE_METRICS_PORT"]
    test = worker["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]  # the slim image has no curl
    assert f"http://127.0.0.1:{port}/readyz" in test[3] and "urllib.request" in test[3]
    assert worker["environment"]["WAITLINE_METRICS_HOST"] == "0.0.0.0"  # loopback included


def test_the_metrics_port_is_published_on_the_host_loopback() -> None:
    worker = _compose()["services"]["worker"]
    port = int(worker["environment"]["WAITLINE_METRICS_PORT"])
    (published,) = worker["ports"]
    assert published == {"target": port, "host_ip": "127.0.0.1"}  # a free host port per replica


def test_state_lives_on_a_named_volume() -> None:
    compose = _compose()
    worker = compose["services"]["worker"]
    state_dir = worker["environment"]["WAITLINE_STATE_DIR"]
    (volume,) = worker["volumes"]
    name, target = volume.split(":")
    assert target == state_dir and name in compose["volumes"]
    assert f"WAITLINE_STATE_DIR={state_dir}" in (REPO / "Dockerfile").read_text()


def test_the_prefix_isolates_topics_and_group() -> None:
    """Both waitline services take WAITLINE_TOPIC_PREFIX; no group id is set, so the group
    (and the state directory named after it) follows the prefix."""
    for name in ("topics", "worker"):
        environment = _compose()["services"][name]["environment"]
        assert environment["WAITLINE_TOPIC_PREFIX"] == "${WAITLINE_TOPIC_PREFIX:-}"
        assert "WAITLINE_GROUP_ID" not in environment


def test_the_image_runs_as_a_user_that_owns_the_state_directory() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    uid = users[-1].split(":")[0]
    text = "\n".join(lines)
    assert f"--uid {uid}" in text and f"chown {uid}:" in text and "/var/lib/waitline" in text


def test_the_build_context_leaves_out_what_the_image_does_not_need() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (".venv", ".git", "**/__pycache__", ".mypy_cache", ".ruff_cache"):
        assert entry in ignored
    for entry in (".pytest_cache", ".hypothesis", ".waitline", "benchmarks/results"):
        assert entry in ignored
