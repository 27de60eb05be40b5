"""The short fault-injection run: SIGKILLed, added and removed workers lose no promise."""

from __future__ import annotations

import subprocess
import sys

import pytest
from harness import REPO

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_short_chaos_run_passes(kafka_bootstrap: str, tmp_path: object, guarantee: str) -> None:
    """exactly_once: workers also SIGKILL themselves inside open transactions, and the checker
    reads committed records only, so a transaction no one aborts fails the run."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "chaos.py"),
            "--short",
            "--bootstrap",
            kafka_bootstrap,
            "--tmp",
            str(tmp_path),
            "--guarantee",
            guarantee,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    verdict = [line for line in result.stdout.splitlines() if line.startswith("chaos:")]
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert len(verdict) == 1 and verdict[0].startswith("chaos: PASS"), result.stdout
    fields = dict(part.split("=", 1) for part in verdict[0].split()[2:])
    assert int(fields["kills"]) >= 3
    if guarantee == "exactly_once":
        assert int(fields["in_transaction"]) >= 1
