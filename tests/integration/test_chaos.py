"""The short fault-injection run: SIGKILLed, added and removed workers lose no promise."""

from __future__ import annotations

import subprocess
import sys

import pytest
from harness import REPO

pytestmark = pytest.mark.integration


def test_short_chaos_run_passes(kafka_bootstrap: str, tmp_path: object) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "chaos.py"),
            "--short",
            "--bootstrap",
            kafka_bootstrap,
            "--tmp",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    verdict = [line for line in result.stdout.splitlines() if line.startswith("chaos:")]
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert len(verdict) == 1 and verdict[0].startswith("chaos: PASS"), result.stdout
    assert "kills=3" in verdict[0]
