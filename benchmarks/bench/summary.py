"""What a run found, summarised: the rows of the results JSON, the printed table and the chart."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Any

from .contenders import CONTENDERS, WAITLINES

# The timeout-lateness measurements of the timeouts workload, in order: (key under waitline's
# row, "" for the row itself; with 1,000,000 pending waits (scaled); offer at the batched linger).
LATENESS: tuple[tuple[str, bool, bool], ...] = (
    ("", False, False),
    ("batched_offer", False, True),
    ("with_pending_waits", True, False),
    ("with_pending_waits_batched_offer", True, True),
)


# Decimals of each ratio: to the ceiling, to Faust, two processes to one.
_DIGITS = {"ceiling": 3, "faust": 1, "one_process": 2}


def summarize(
    workload: str, runs: dict[str, list[float]], peaks: dict[str, list[float]]
) -> dict[str, dict[str, Any]]:
    """Each contender's row of a workload: the median rate, its runs and peak RSS, and for
    waitline (and waitline-2p) the ratios to each peer measured, of the medians and paired
    (``_paired``); waitline-2p's also to one process. Runs are listed in round order."""
    rows: dict[str, dict[str, Any]] = {}
    for contender, rates in runs.items():
        rows[contender] = {
            "records_per_s": round(statistics.median(rates)),
            "runs": [round(r) for r in rates],
            "peak_rss_mb": round(max(peaks[contender]), 1),
        }
    unrated = [name for name, rates in runs.items() if 0 in rates]
    for name in unrated:  # done before the first progress sample (tiny --scale)
        print(f"{workload}: {name} measured no rate in a run; no ratio to it")
    for name in (name for name in WAITLINES if name in rows):
        peers = {"ceiling": "ceiling", "faust": "faust"}  # peer → the ratio's label
        if name == "waitline-2p":
            peers["waitline"] = "one_process"
        for peer, label in peers.items():
            if peer not in rows or peer in unrated:
                continue
            digits = _DIGITS[label]
            ratio = rows[name]["records_per_s"] / rows[peer]["records_per_s"]
            rows[name][f"ratio_to_{label}"] = round(ratio, digits)
            # The same ratio taken within each round (runs minutes apart, not tens of
            # minutes), then the median: what drift between rounds cannot move.
            rows[name][f"ratio_to_{label}_paired"] = paired(runs[name], runs[peer], digits)
    return rows


def paired(ours: list[float], theirs: list[float], digits: int) -> float:
    """The median over rounds of ``ours[i] / theirs[i]`` (runs of one round)."""
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return round(statistics.median(ratios), digits)


def machine_info(bootstrap: str | None) -> dict[str, Any]:
    import confluent_kafka

    versions: dict[str, Any] = {}
    for dist in ("confluent-kafka", "faust-streaming", "rocksdict", "pydantic"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            versions[dist] = None
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "librdkafka": confluent_kafka.libversion()[0],
        **versions,
        "broker": bootstrap or "tansu 0.6.0 (embedded, memory storage)",
    }


def _ratio(row: dict[str, Any], peer: str) -> str:
    """``row``'s ratio to ``peer`` for the table: "median (paired)", or "-" if none."""
    if f"ratio_to_{peer}" not in row:
        return "-"
    digits = _DIGITS[peer]
    paired = row.get(f"ratio_to_{peer}_paired")
    shown = "-" if paired is None else f"{paired:.{digits}f}"
    return f"{row[f'ratio_to_{peer}']:.{digits}f} ({shown})"


_RATED = ("ceiling", "waitline", "faust")  # the table's rate columns


def print_table(results: dict[str, Any]) -> None:
    print(
        f"\n{'workload':13} {'ceiling':>10} {'waitline':>10} {'faust':>8} "
        f"{'÷ceiling':>15} {'÷faust':>13} {'rss MiB':>8} {'2 procs':>9} {'÷1 proc':>13}"
    )
    for name, rows in results["workloads"].items():
        w = rows.get("waitline", {})
        two = rows.get("waitline-2p", {})
        rates = [rows.get(c, {}).get("records_per_s", "-") for c in _RATED]
        print(
            f"{name:13} {rates[0]:>10} {rates[1]:>10} {rates[2]:>8} "
            f"{_ratio(w, 'ceiling'):>15} {_ratio(w, 'faust'):>13} "
            f"{w.get('peak_rss_mb', '-'):>8} {two.get('records_per_s', '-'):>9} "
            f"{_ratio(two, 'one_process'):>13}"
        )
    print("ratios: of the medians (paired: the median of the ratios within each round)")
    for name, rows in results["workloads"].items():
        for contender, row in rows.items():
            for suffix, at in (("", ""), ("_at_waitline_rate", " at waitline's rate")):
                if "latency_ms" + suffix in row:
                    print(f"{name}: {contender}{at} match latency ms {row['latency_ms' + suffix]}")
                if "latency_ms_batched_offer" + suffix in row:
                    print(
                        f"{name}: {contender}{at} match latency ms, offer at linger.ms "
                        f"{results['batched_offer_linger_ms']}: "
                        f"{row['latency_ms_batched_offer' + suffix]}"
                    )
        w = rows.get("waitline", {})
        for key, _, batched_offer in LATENESS:
            found = w.get(key) if key else w
            if found and "lateness_ms" in found:
                offer_linger = results[
                    "batched_offer_linger_ms" if batched_offer else "offer_linger_ms"
                ]
                print(
                    f"{name}: timeout lateness ms, {found['pending_waits']:,} pending waits, "
                    f"offer at linger.ms {offer_linger}: {lateness_line(found)}"
                )
        if "ratio_to_small_state" in w:
            print(f"{name}: throughput ÷ small state {w['ratio_to_small_state']}")
        if "ratio_to_match_heavy" in w:
            print(f"{name}: throughput ÷ match-heavy {w['ratio_to_match_heavy']}")
    if "restore" in results:
        fresh = results["restore"]["fresh_state_dir"]
        print(
            f"restore (make recovery): {fresh['restore_records_per_s']:,} records/s "
            f"({fresh['changelog_records_restored']:,} in {fresh['restore_seconds']} s)"
        )


def chart(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart (pip install '.[bench]')")
        return
    names = list(results["workloads"])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.2
    for i, contender in enumerate(CONTENDERS):
        values = [results["workloads"][n].get(contender, {}).get("records_per_s", 0) for n in names]
        offset = (i - (len(CONTENDERS) - 1) / 2) * width
        ax.bar([x + offset for x in range(len(names))], values, width, label=contender)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("input records/s (median)")
    ax.set_title("waitline vs ceiling vs faust-streaming (embedded broker, 2 cores)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def lateness_line(found: dict[str, Any]) -> str:
    """A timeout-lateness measurement on one line: percentiles and early firings."""
    return f"{found['lateness_ms']}, early {found['early_firings']}"
