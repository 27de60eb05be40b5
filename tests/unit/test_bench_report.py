"""The docs' results tables are what ``benchmarks/bench/report.py`` renders from the results
files, and the history of runs of record is data the docs can name their run from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from benchmodules import load

contenders = load("bench.contenders")
report = load("bench.report")
summary = load("bench.summary")
workloads = load("bench.workloads")

LATEST = json.loads(report.LATEST.read_text())
HISTORY = report.read_history()


@pytest.mark.parametrize(
    ("path", "marker", "kind"), report.DOCS, ids=[f"{p.name}:{m}" for p, m, _ in report.DOCS]
)
def test_the_docs_show_what_the_results_render(path: Path, marker: str, kind: str) -> None:
    shown = report.block(path.read_text(), marker)
    assert shown == report.RENDER[kind](LATEST, HISTORY), (
        f"{path.name} differs from benchmarks/results: run "
        "`.venv/bin/python -m benchmarks.bench.report --write`"
    )


def test_the_latest_run_is_in_the_history() -> None:
    run = report.run_of(LATEST, HISTORY)
    assert run is not None, (
        "benchmarks/results/latest.json is not in history.jsonl: run "
        "`.venv/bin/python -m benchmarks.bench.report --record --notes '...'`"
    )
    date, _commit = run
    assert report._when(date) in report.render_full(LATEST, HISTORY)


def test_every_history_line_says_when_what_and_how_fast() -> None:
    assert HISTORY
    for line in HISTORY:
        assert all(key in line for key in report.REQUIRED), line
        assert isinstance(line["date"], str) and line["date"][:4].isdigit()
        assert line["commit"] is None or isinstance(line["commit"], str)
        assert line["workload"] in (*workloads.WORKLOADS, "restore")
        assert line["contender"] in contenders.CONTENDERS
        assert isinstance(line["records_per_s"], int) and line["records_per_s"] >= 0


def _results(rates: dict[str, list[float]]) -> dict[str, Any]:
    peaks = {name: [100.0] * len(r) for name, r in rates.items()}
    return {
        "workloads": {"match-heavy": summary.summarize("match-heavy", rates, peaks)},
        "machine": {"cpus": 2},
        "command": "python -m benchmarks.bench --runs 2",
    }


def test_a_recorded_run_is_found_again_and_named_in_the_tables() -> None:
    results = _results({"ceiling": [100_000.0, 90_000.0], "waitline": [20_000.0, 21_000.0]})
    lines = report.history_lines(results, date="2026-12-08T10:00Z", commit="abc1234", notes="x")
    assert [(line["contender"], line["records_per_s"]) for line in lines] == [
        ("ceiling", 95_000),
        ("waitline", 20_500),
    ]
    assert lines[1]["ratio_to_ceiling"] == 0.216 and lines[1]["runs"] == [20_000, 21_000]
    assert report.run_of(results, [*HISTORY, *lines]) == ("2026-12-08T10:00Z", "abc1234")
    assert report.run_of(results, HISTORY) is None
    shown = report.render_summary(results, lines)
    assert "the run of 2026-12-08 10:00 UTC on commit abc1234: median of 2 runs" in shown
    assert "| match-heavy | 20,500 | 0.216 (0.217) | — | — |" in shown


def test_the_history_keeps_the_live_measurements_p99() -> None:
    lines = report.history_lines(LATEST, date="d", commit=None)
    by = {(line["workload"], line["contender"]): line for line in lines}
    waitline = by["match-heavy", "waitline"]
    assert waitline["latency_p99_ms_batched_offer"] == 123.2
    assert by["match-heavy", "ceiling"]["floor_p99_ms_batched_offer"] == 90.5
    timeouts = by["timeouts", "waitline"]
    assert timeouts["with_pending_waits_batched_offer_lateness_p99_ms"] == 159.8
    assert timeouts["early_firings"] == 0 and timeouts["batched_offer_linger_ms"] == 50


def test_a_block_is_replaced_between_its_markers_only() -> None:
    text = "a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n<!-- u:begin -->\nu\n<!-- u:end -->\n"
    written = report.with_block(text, "t", "new\n")
    assert report.block(written, "t") == "new\n"
    assert report.block(written, "u") == "u\n"
    assert written.startswith("a\n") and "\nb\n" in written
    assert report.with_block(written, "t", "new\n") == written


def test_record_then_check_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "run.json"
    results.write_text(json.dumps(_results({"waitline": [20_000.0]})))
    history = tmp_path / "history.jsonl"
    argv = ["--results", str(results), "--history-file", str(history)]
    assert report.main([*argv, "--record", "--commit", "abc1234", "--notes", "a try"]) == 0
    (line,) = report.read_history(history)
    assert line["commit"] == "abc1234" and line["notes"] == "a try" and "T" in line["date"]
    with pytest.raises(SystemExit) as again:
        report.main([*argv, "--record"])
    assert again.value.code == 2 and "already" in capsys.readouterr().err
    docs = [path.read_text() for path, _, _ in report.DOCS]
    assert report.main([*argv, "--check"]) == 1  # another run: the docs differ, and stay
    assert [path.read_text() for path, _, _ in report.DOCS] == docs
