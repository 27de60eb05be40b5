"""The make targets that pass arguments on (dry runs: ``make -n`` runs nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _dry_run(*args: str, **env: str) -> list[str]:
    """The commands ``make -n ARGS`` would run (nothing is run, the install step included)."""
    if shutil.which("make") is None:
        pytest.skip("no make here")
    base = {k: v for k, v in os.environ.items() if k not in ("WAITLINE_TEST_BOOTSTRAP", "ARGS")}
    done = subprocess.run(
        ["make", "-n", "-C", str(REPO), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [" ".join(line.split()) for line in done.stdout.splitlines()]


def test_make_dev_passes_args_to_waitline_dev() -> None:
    lines = _dry_run("dev", "ARGS=--port 9093 --state-dir .waitline/dev")
    assert ".venv/bin/waitline dev --port 9093 --state-dir .waitline/dev" in lines


def test_make_chaos_goes_to_the_test_broker_when_one_is_named() -> None:
    named = _dry_run("chaos", "ARGS=--short", WAITLINE_TEST_BOOTSTRAP="k:9092")
    assert ".venv/bin/python benchmarks/chaos.py --bootstrap k:9092 --short" in named
    embedded = _dry_run("chaos", "ARGS=--short")
    assert ".venv/bin/python benchmarks/chaos.py --short" in embedded
