"""bench.py's arithmetic: medians, ratios of the medians and paired (per-round) ratios."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks" / "bench.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench"] = bench
_spec.loader.exec_module(bench)


def _peaks(runs: dict[str, list[float]]) -> dict[str, list[float]]:
    return {name: [100.0 + i for i in range(len(rates))] for name, rates in runs.items()}


def test_ratios_of_medians_and_paired_differ_under_drift() -> None:
    # Round 2 ran in a slow phase for everyone: the medians pair waitline's round 1 with Faust's
    # round 3, the paired ratio compares each round with itself.
    runs = {
        "ceiling": [200_000.0, 100_000.0, 160_000.0],
        "waitline": [40_000.0, 20_000.0, 36_000.0],
        "faust": [2_000.0, 1_000.0, 3_000.0],
    }
    rows = bench.summarize("match-heavy", runs, _peaks(runs))
    w = rows["waitline"]
    assert w["records_per_s"] == 36_000
    assert w["runs"] == [40_000, 20_000, 36_000]
    assert w["peak_rss_mb"] == 102.0
    assert w["ratio_to_faust"] == 18.0  # 36,000 / 2,000
    assert w["ratio_to_faust_paired"] == 20.0  # median of 20, 20, 12
    assert w["ratio_to_ceiling"] == 0.225  # 36,000 / 160,000
    assert w["ratio_to_ceiling_paired"] == 0.2  # median of 0.2, 0.2, 0.225
    assert "ratio_to_waitline" not in rows["faust"]


def test_two_processes_get_a_ratio_to_one_also_paired() -> None:
    runs = {
        "waitline": [40_000.0, 20_000.0, 30_000.0],
        "waitline-2p": [60_000.0, 42_000.0, 63_000.0],
    }
    two = bench.summarize("match-heavy", runs, _peaks(runs))["waitline-2p"]
    assert two["ratio_to_one_process"] == 2.0  # 60,000 / 30,000
    assert two["ratio_to_one_process_paired"] == 2.1  # median of 1.5, 2.1, 2.1


def test_a_peer_with_a_run_of_no_rate_gets_no_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    runs = {
        "ceiling": [0.0, 150_000.0, 160_000.0],
        "waitline": [30_000.0, 31_000.0, 32_000.0],
        "waitline-2p": [60_000.0, 62_000.0, 64_000.0],
    }
    rows = bench.summarize("timeouts", runs, _peaks(runs))
    for name in ("waitline", "waitline-2p"):
        assert "ratio_to_ceiling" not in rows[name] and "ratio_to_ceiling_paired" not in rows[name]
    assert rows["waitline-2p"]["ratio_to_one_process"] == 2.0
    assert capsys.readouterr().out.count("ceiling measured no rate in a run") == 1


def test_the_table_prints_without_waitline(capsys: pytest.CaptureFixture[str]) -> None:
    runs = {"ceiling": [150_000.0], "faust": [2_500.0]}
    results = {
        "workloads": {"match-heavy": bench.summarize("match-heavy", runs, _peaks(runs))},
        "batched_offer_linger_ms": 50,
    }
    bench._table(results)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("match-heavy"))
    assert line.split()[:4] == ["match-heavy", "150000", "-", "2500"]


def test_the_table_shows_median_and_paired(capsys: pytest.CaptureFixture[str]) -> None:
    runs = {
        "ceiling": [200_000.0, 100_000.0, 160_000.0],
        "waitline": [40_000.0, 20_000.0, 36_000.0],
        "waitline-2p": [70_000.0, 40_000.0, 72_000.0],
        "faust": [2_000.0, 1_000.0, 3_000.0],
    }
    results = {
        "workloads": {"match-heavy": bench.summarize("match-heavy", runs, _peaks(runs))},
        "batched_offer_linger_ms": 50,
    }
    bench._table(results)
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("match-heavy"))
    assert "0.225 (0.2)" in line and "18.0 (20.0)" in line and "1.94 (2.0)" in line


def test_unknown_contenders_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--contenders", "waitline,fuast"])
    assert exit_info.value.code == 2
    assert "no contender fuast" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lateness-pending", "1000"], "--lateness-pending goes with --lateness-at"),
        (["--lateness-at", "100", "--lateness-pending", "-1"], "0 or more"),
    ],
)
def test_lateness_pending_needs_lateness_at_and_a_count(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
