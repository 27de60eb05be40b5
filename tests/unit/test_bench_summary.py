"""The benchmark's arithmetic (medians, ratios of the medians and paired per-round ratios), its
command line and the run it asks for, with every measurement stubbed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from benchmodules import load

cli = load("bench.cli")
summary = load("bench.summary")
workloads = load("bench.workloads")


def _peaks(runs: dict[str, list[float]]) -> dict[str, list[float]]:
    return {name: [100.0 + i for i in range(len(rates))] for name, rates in runs.items()}


def test_ratios_of_medians_and_paired_differ_under_drift() -> None:
    # Round 2 ran in a slow phase for everyone: the medians pair waitline's round 3 (36,000) with
    # Faust's round 1 (2,000), the paired ratio compares each round with itself.
    runs = {
        "ceiling": [200_000.0, 100_000.0, 160_000.0],
        "waitline": [40_000.0, 20_000.0, 36_000.0],
        "faust": [2_000.0, 1_000.0, 3_000.0],
    }
    rows = summary.summarize("match-heavy", runs, _peaks(runs))
    w = rows["waitline"]
    assert w["records_per_s"] == 36_000
    assert w["runs"] == [40_000, 20_000, 36_000]
    assert w["peak_rss_mb"] == 102.0
    assert w["ratio_to_faust"] == 18.0  # 36,000 / 2,000
    assert w["ratio_to_faust_paired"] == 20.0  # median of 20, 20, 12
    assert w["ratio_to_ceiling"] == 0.225  # 36,000 / 160,000
    assert w["ratio_to_ceiling_paired"] == 0.2  # median of 0.2, 0.2, 0.225
    for peer in ("ceiling", "faust"):  # only waitline's rows carry ratios
        assert not [key for key in rows[peer] if key.startswith("ratio_to_")]


def test_two_processes_get_a_ratio_to_one_also_paired() -> None:
    runs = {
        "waitline": [40_000.0, 20_000.0, 30_000.0],
        "waitline-2p": [60_000.0, 42_000.0, 63_000.0],
    }
    two = summary.summarize("match-heavy", runs, _peaks(runs))["waitline-2p"]
    assert two["ratio_to_one_process"] == 2.0  # 60,000 / 30,000
    assert two["ratio_to_one_process_paired"] == 2.1  # median of 1.5, 2.1, 2.1


def test_a_peer_with_a_run_of_no_rate_gets_no_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    runs = {
        "ceiling": [0.0, 150_000.0, 160_000.0],
        "waitline": [30_000.0, 31_000.0, 32_000.0],
        "waitline-2p": [60_000.0, 62_000.0, 64_000.0],
    }
    rows = summary.summarize("timeouts", runs, _peaks(runs))
    for name in ("waitline", "waitline-2p"):
        assert "ratio_to_ceiling" not in rows[name] and "ratio_to_ceiling_paired" not in rows[name]
    assert rows["waitline-2p"]["ratio_to_one_process"] == 2.0
    assert capsys.readouterr().out.count("ceiling measured no rate in a run") == 1


def test_the_table_prints_without_waitline(capsys: pytest.CaptureFixture[str]) -> None:
    runs = {"ceiling": [150_000.0], "faust": [2_500.0]}
    results = {
        "workloads": {"match-heavy": summary.summarize("match-heavy", runs, _peaks(runs))},
        "batched_offer_linger_ms": 50,
    }
    summary.print_table(results)
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
        "workloads": {"match-heavy": summary.summarize("match-heavy", runs, _peaks(runs))},
        "batched_offer_linger_ms": 50,
    }
    summary.print_table(results)
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("match-heavy"))
    assert "0.225 (0.200)" in line and "18.0 (20.0)" in line and "1.94 (2.00)" in line


@pytest.fixture
def no_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Arguments that pass validation must not start a real benchmark (a broker, ~22 min)."""

    def refuse(*_args: object) -> int:
        raise AssertionError("the arguments were accepted")

    monkeypatch.setattr(cli, "run", refuse)


@pytest.mark.parametrize(
    ("contenders", "message"),
    [
        ("waitline,fuast", "no contender 'fuast'"),
        ("waitline,", "no contender ''"),
        ("ceiling,waitline,waitline", "a contender named twice"),
    ],
)
@pytest.mark.usefixtures("no_benchmark")
def test_bad_contenders_are_refused(
    contenders: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--contenders", contenders])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lateness-pending", "1000"], "--lateness-pending goes with --lateness-at"),
        (["--lateness-at", "100", "--lateness-pending", "-1"], "0 or more"),
    ],
)
@pytest.mark.usefixtures("no_benchmark")
def test_lateness_pending_needs_lateness_at_and_a_count(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


class _Broker:
    pid = None  # no process: --trace measures no broker CPU

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path

    def start(self) -> str:
        return "127.0.0.1:9"

    def stop(self) -> None:
        pass


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list[Any]]:
    """``cli.run`` with every measurement stubbed: what each was asked is recorded."""
    calls: dict[str, list[Any]] = {
        "measure": [],
        "latency": [],
        "latency_traced": [],
        "lateness": [],
        "traced": [],
    }
    rates = {"ceiling": 160_000.0, "waitline": 40_000.0, "waitline-2p": 70_000.0, "faust": 2_500.0}

    def measure(contender: str, *args: Any) -> tuple[float, float]:
        calls["measure"].append(contender)
        return rates[contender], 100.0

    def latency(contender: str, *args: Any, **traced: Any) -> dict[str, float]:
        calls["latency"].append(contender)
        calls["latency_traced"].append(traced.get("trace") is not None)
        return {"p50": 1.0, "p99": 2.0, "max": 3.0}

    def lateness(*args: Any, pending: int = 0, linger_ms: int = 5, **traced: Any) -> dict[str, Any]:
        calls["lateness"].append((pending, linger_ms))
        calls["traced"].append(traced.get("trace") is not None)
        late = {"p50": 1.0, "p99": 2.0, "max": 3.0}
        return {"lateness_ms": late, "early_firings": 0, "pending_waits": pending}

    monkeypatch.setattr(cli, "EmbeddedBroker", _Broker)
    monkeypatch.setattr(cli, "fresh_topics", lambda bootstrap: (object(), "prefix"))
    monkeypatch.setattr(cli, "measure", measure)
    monkeypatch.setattr(cli, "live_latency", latency)
    monkeypatch.setattr(cli, "timeout_lateness", lateness)
    monkeypatch.setattr(cli, "chart", lambda results, path: None)
    monkeypatch.setattr(cli, "RESULTS", tmp_path)
    return calls


def test_a_run_without_waitline_measures_the_others(
    stubbed: dict[str, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--contenders", "ceiling,faust", "--workloads", "match-heavy,timeouts", "--runs", "1"]
    assert cli.main([*argv, "--no-latency", "--output", "t"]) == 0
    assert stubbed["measure"] == ["ceiling", "faust"] * 2
    assert stubbed["lateness"] == []
    assert "waitline is not among --contenders; no timeout lateness" in capsys.readouterr().out
    results = json.loads((tmp_path / "t.json").read_text())
    assert results["workloads"]["timeouts"]["faust"]["records_per_s"] == 2_500


def test_the_timeouts_workload_measures_lateness_at_both_lingers_with_pending_waits(
    stubbed: dict[str, list[Any]], tmp_path: Path
) -> None:
    argv = ["--contenders", "waitline", "--workloads", "timeouts", "--runs", "1", "--scale", "0.1"]
    assert cli.main([*argv, "--output", "t"]) == 0
    # Empty state at linger 5 and 50, then 1M (scaled: 100,000) pending at linger 5 and 50.
    assert stubbed["lateness"] == [(0, 5), (0, 50), (100_000, 5), (100_000, 50)]
    w = json.loads((tmp_path / "t.json").read_text())["workloads"]["timeouts"]["waitline"]
    assert w["with_pending_waits"]["pending_waits"] == 100_000
    assert w["with_pending_waits_batched_offer"]["pending_waits"] == 100_000


def test_lateness_at_passes_the_pending_waits_on(stubbed: dict[str, list[Any]]) -> None:
    argv = ["--lateness-at", "100,200", "--lateness-pending", "5000", "--offer-linger", "50"]
    assert cli.main(argv) == 0
    assert stubbed["lateness"] == [(5000, 50), (5000, 50)]
    assert stubbed["measure"] == [] and stubbed["latency"] == []
    assert stubbed["traced"] == [False, False]


def test_lateness_at_with_trace_gives_each_measurement_a_trace(
    stubbed: dict[str, list[Any]],
) -> None:
    assert cli.main(["--lateness-at", "100,200", "--trace"]) == 0
    assert stubbed["traced"] == [True, True]


def test_latency_at_with_trace_traces_waitline_not_the_ceiling(
    stubbed: dict[str, list[Any]],
) -> None:
    assert cli.main(["--latency-at", "100", "--latency-of", "ceiling,waitline", "--trace"]) == 0
    assert stubbed["latency"] == ["ceiling", "waitline"]
    assert stubbed["latency_traced"] == [False, True]


def test_hot_pair_is_reported_beside_match_heavy(
    stubbed: dict[str, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--contenders", "waitline", "--workloads", "match-heavy,hot-pair", "--runs", "1"]
    assert cli.main([*argv, "--no-latency", "--output", "t"]) == 0
    workloads = json.loads((tmp_path / "t.json").read_text())["workloads"]
    assert workloads["hot-pair"]["waitline"]["ratio_to_match_heavy"] == 1.0  # the stub's rates
    assert "ratio_to_match_heavy" not in workloads["match-heavy"]["waitline"]
    assert "hot-pair: throughput ÷ match-heavy 1.0" in capsys.readouterr().out


def test_the_hot_pair_input_is_one_pair() -> None:
    from waitline.topics import load_topics

    topics = load_topics(workloads.REPO / "topics.yaml", "p.")
    _, stream = workloads.build_input("hot-pair", topics, 0.01)
    assert {key for _, key, _ in stream} == {b"bench|hot"}
    kinds = [(topic, json.loads(value).get("waitId") is None) for topic, _, value in stream]
    assert (
        kinds
        == [("p.events", True)] * 1000
        + [("p.wait-commands", False)] * 100
        + [("p.events", True)] * 100
    )
    assert json.loads(stream[1000][2])["lookback"] == "0"
