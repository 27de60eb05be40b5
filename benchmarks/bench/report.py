"""The docs' results tables and the history of runs of record, rendered from the results files.

``python -m benchmarks.bench.report`` prints the Markdown of docs/benchmarks.md's results, rendered
from ``--results`` (default benchmarks/results/latest.json); ``--summary`` prints the README's
smaller table. ``--write`` puts both in place between their markers (``<!-- results:begin -->`` …
``<!-- results:end -->`` in docs/benchmarks.md, ``<!-- results-summary:begin -->`` …
``<!-- results-summary:end -->`` in README.md) and ``--check`` exits 1 where they differ; a unit
test checks the same, so the docs cannot drift from the results file.

Runs of record are kept as data in benchmarks/results/history.jsonl: one JSON line per run,
workload and contender (its date, commit, rate, runs, ratios, peak RSS, the p99 of its live
measurements, short notes). ``--record --date D --commit C [--notes N]`` appends the results
file's run; ``--history`` prints them. The docs name the run they show by the date and commit of
its lines there, so after ``make bench``: ``--record``, then ``--write``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .summary import LATENESS

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
LATEST = RESULTS / "latest.json"
HISTORY = RESULTS / "history.jsonl"
# What ``--write`` and ``--check`` keep in step: (document, marker name, renderer name).
DOCS = (
    (REPO / "docs" / "benchmarks.md", "results", "full"),
    (REPO / "docs" / "benchmarks.md", "history", "history"),
    (REPO / "README.md", "results-summary", "summary"),
)
DASH = "—"
# The ratios a results row may carry (``summary.summarize``, ``cli.run``), with their decimals.
RATIOS = {
    "ratio_to_ceiling": 3,
    "ratio_to_faust": 1,
    "ratio_to_one_process": 2,
    "ratio_to_small_state": 3,
    "ratio_to_match_heavy": 3,
}
# Live measurements kept in the history as their p99: (key in a results row, history key).
LIVE_P99 = (
    ("latency_ms", "latency_p99_ms"),
    ("latency_ms_batched_offer", "latency_p99_ms_batched_offer"),
    ("latency_ms_at_waitline_rate", "floor_p99_ms"),
    ("latency_ms_batched_offer_at_waitline_rate", "floor_p99_ms_batched_offer"),
)
REQUIRED = ("date", "commit", "workload", "contender", "records_per_s")


# -- the tables ----------------------------------------------------------------------------------


def _prose(text: str) -> str:
    """A paragraph wrapped as the docs are, at 99 columns."""
    return textwrap.fill(text, width=99, break_long_words=False, break_on_hyphens=False)


def _number(value: float | None) -> str:
    return DASH if value is None else f"{round(value):,}"


def _ratio(row: dict[str, Any], label: str, sign: str = "") -> str:
    """``row``'s ratio to ``label`` as "median (paired)", e.g. ``15.7× (15.9×)``, or a dash."""
    key = f"ratio_to_{label}"
    if key not in row:
        return DASH
    digits = RATIOS[key]
    shown = f"{row[key]:.{digits}f}{sign}"
    if f"{key}_paired" in row:
        shown += f" ({row[f'{key}_paired']:.{digits}f}{sign})"
    return shown


def _ms(found: dict[str, Any] | None) -> str:
    """Percentiles in ms as ``p50 / p99 / max``, or a dash."""
    if not found:
        return DASH
    return " / ".join(_number(found[p]) for p in ("p50", "p99", "max"))


def _table(header: list[str], rows: Iterable[list[str]], text: tuple[int, ...] = (0,)) -> list[str]:
    """A Markdown table: the columns numbered in ``text`` left-aligned, the others (numbers)
    right-aligned."""
    align = ["---" if i in text else "---:" for i in range(len(header))]
    return [f"| {' | '.join(cells)} |" for cells in (header, align, *rows)]


def _runs(results: dict[str, Any]) -> int:
    """How many runs each median is of (waitline's on match-heavy, else any row's)."""
    rows = [row for rates in results["workloads"].values() for row in rates.values()]
    mine = results["workloads"].get("match-heavy", {}).get("waitline")
    return len((mine or rows[0])["runs"]) if rows else 0


def _when(date: str) -> str:
    """A history date for people: ``2026-12-05T01:56Z`` → ``2026-12-05 01:56 UTC``."""
    return date.replace("T", " ").replace("Z", " UTC")


def _caption(results: dict[str, Any], run: tuple[str, str] | None) -> str:
    when = f"the run of {_when(run[0])} on commit {run[1]}" if run else "a run not in history"
    return f"From {when}: median of {_runs(results)} runs, taken round by round"


def _machine(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    versions = ", ".join(
        f"{name} {m[name]}"
        for name in ("confluent-kafka", "rocksdict", "pydantic", "faust-streaming")
        if m.get(name)
    )
    return (
        f"Machine: {m.get('cpus')} CPUs, {m.get('memory_gib')} GiB, Python {m.get('python')}, "
        f"{versions}, librdkafka {m.get('librdkafka')}; broker: {m.get('broker')}. "
        f"Command: `{results.get('command', '').strip()}`, "
        f"{results.get('guarantee', 'at_least_once')}."
    )


def render_full(results: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """docs/benchmarks.md's results: throughput, live latency and lateness, restore, machine."""
    run = run_of(results, history)
    lines = [
        _prose(
            f"{_caption(results, run)}; input records/s; ratios of the medians, the paired ratio "
            "(the median of the per-round ratios) in brackets."
        ),
        "",
    ]
    rows = []
    for name, by in results["workloads"].items():
        w, two = by.get("waitline", {}), by.get("waitline-2p", {})
        rss = f"{round(w['peak_rss_mb'])} MiB" if "peak_rss_mb" in w else DASH
        rows.append(
            [
                name,
                *(_number(by.get(c, {}).get("records_per_s")) for c in ("ceiling", "waitline")),
                _number(by.get("faust", {}).get("records_per_s")),
                _ratio(w, "ceiling"),
                _ratio(w, "faust", "×"),
                rss,
                _number(two.get("records_per_s")),
                _ratio(two, "one_process", "×"),
            ]
        )
    lines += _table(
        [
            "workload",
            "ceiling",
            "waitline",
            "faust-streaming",
            "waitline ÷ ceiling",
            "waitline ÷ faust",
            "waitline peak RSS",
            "2 processes",
            "2 ÷ 1 process",
        ],
        rows,
    )
    # large-state's rate with small state's, hot-pair's with match-heavy's (the same workload)
    extra = [
        f"{name} {by['waitline'][key]:.3f}"
        for name, by in results["workloads"].items()
        for key in ("ratio_to_small_state", "ratio_to_match_heavy")
        if key in by.get("waitline", {})
    ]
    if extra:
        lines += ["", _prose(f"Waitline's rate ÷ its rate on match-heavy: {', '.join(extra)}.")]
    heavy = results["workloads"].get("match-heavy", {})
    offer, batched = results.get("offer_linger_ms", 5), results.get("batched_offer_linger_ms")
    live = []
    for contender, suffix, label in (
        ("ceiling", "", "ceiling, at half its own rate"),
        ("ceiling", "_at_waitline_rate", "ceiling at waitline's rate (the broker's floor)"),
        ("waitline", "", "waitline"),
        ("faust", "", "faust-streaming"),
    ):
        row = heavy.get(contender, {})
        found = row.get("latency_ms" + suffix)
        if found:
            later = row.get("latency_ms_batched_offer" + suffix)
            live.append([label, _number(found["offered_per_s"]), _ms(found), _ms(later)])
    if live:
        lines += [
            "",
            _prose(
                "Match latency (event produced → resume readable), ms p50 / p99 / max, offered "
                "the match-heavy mix live for 10 s at half the contender's rate above, each on a "
                "restarted broker:"
            ),
            "",
        ]
        lines += _table(
            [
                "contender",
                "offered rec/s",
                f"offer at linger.ms {offer}",
                f"offer at linger.ms {batched}",
            ],
            live,
        )
    timeouts = results["workloads"].get("timeouts", {}).get("waitline", {})
    late = []
    for pending in (False, True):
        found = {}
        for key, preloaded, batched_offer in LATENESS:
            measured = timeouts.get(key) if key else timeouts
            if preloaded == pending and measured and "lateness_ms" in measured:
                found[batched_offer] = measured
        if found:
            waits = max(m["pending_waits"] for m in found.values())
            late.append(
                [
                    f"{waits:,} pending waits" if pending else "empty state",
                    str(sum(m["early_firings"] for m in found.values())),
                    _ms(found.get(False, {}).get("lateness_ms")),
                    _ms(found.get(True, {}).get("lateness_ms")),
                ]
            )
    if late:
        lines += [
            "",
            _prose(
                "Timeout lateness (resume readable − deadline), ms p50 / p99 / max: 100,000 "
                "waits with 1–5 s timeouts registered live at half the timeouts workload's rate:"
            ),
            "",
        ]
        lines += _table(
            [
                "state",
                "early firings",
                f"offer at linger.ms {offer}",
                f"offer at linger.ms {batched}",
            ],
            late,
        )
    restore = results.get("restore", {}).get("fresh_state_dir")
    if restore:
        lines += [
            "",
            _prose(
                f"Restore of an empty state directory from the changelog (`make recovery`): "
                f"{restore['restore_records_per_s']:,} records/s "
                f"({restore['changelog_records_restored']:,} in {restore['restore_seconds']} s)."
            ),
        ]
    return "\n".join([*lines, "", _prose(_machine(results))]) + "\n"


def render_summary(results: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """The README's table: waitline's rate and its ratios to the peers, per workload."""
    rows = []
    for name, by in results["workloads"].items():
        w, two = by.get("waitline", {}), by.get("waitline-2p", {})
        rows.append(
            [
                name,
                _number(w.get("records_per_s")),
                _ratio(w, "ceiling"),
                _ratio(w, "faust", "×"),
                _number(two.get("records_per_s")),
            ]
        )
    header = ["workload", "waitline rec/s", "÷ ceiling", "÷ faust-streaming", "2 processes rec/s"]
    caption = _prose(f"{_caption(results, run_of(results, history))}; ratios paired in brackets.")
    return "\n".join([*_table(header, rows), "", caption]) + "\n"


def render_history(results: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """The runs of record on match-heavy with both peers, oldest first: each contender's rate and
    waitline's ratios (``results`` is not read: every run is in ``history``)."""
    runs: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for line in history:
        if line["workload"] == "match-heavy" and "guarantee" not in line:
            key = (line["date"], line["commit"] or "", line.get("notes", ""))
            runs.setdefault(key, {})[line["contender"]] = line
    rows = [
        [
            _when(date),
            commit or DASH,
            *(_number(by[c]["records_per_s"]) for c in ("ceiling", "waitline", "faust")),
            _ratio(by["waitline"], "ceiling"),
            _ratio(by["waitline"], "faust", "×"),
            notes,
        ]
        for (date, commit, notes), by in runs.items()
        if {"ceiling", "waitline", "faust"} <= set(by)
    ]
    header = ["run", "commit", "ceiling", "waitline", "faust-streaming", "÷ ceiling", "÷ faust"]
    return "\n".join(_table([*header, "notes"], rows, text=(0, 1, 7))) + "\n"


RENDER = {"full": render_full, "summary": render_summary, "history": render_history}


def block(text: str, marker: str) -> str:
    """What ``text`` holds between ``<!-- MARKER:begin -->`` and ``<!-- MARKER:end -->``."""
    begin, end = f"<!-- {marker}:begin -->\n", f"<!-- {marker}:end -->"
    start = text.index(begin) + len(begin)
    return text[start : text.index(end, start)].strip("\n") + "\n"


def with_block(text: str, marker: str, content: str) -> str:
    """``text`` with what lies between ``marker``'s lines replaced by ``content``."""
    begin, end = f"<!-- {marker}:begin -->\n", f"<!-- {marker}:end -->"
    start = text.index(begin) + len(begin)
    stop = text.index(end, start)
    return f"{text[:start]}\n{content.strip(chr(10))}\n\n{text[stop:]}"


# -- the history -----------------------------------------------------------------------------------


def read_history(path: Path = HISTORY) -> list[dict[str, Any]]:
    """The lines of history.jsonl (none if it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def history_lines(
    results: dict[str, Any], *, date: str, commit: str | None, notes: str | None = None
) -> list[dict[str, Any]]:
    """One history line per workload and contender of a results file."""
    lines = []
    for workload, by in results["workloads"].items():
        for contender, row in by.items():
            line: dict[str, Any] = {"date": date, "commit": commit}
            line |= {"workload": workload, "contender": contender}
            line |= {k: row[k] for k in ("records_per_s", "runs") if k in row}
            for key in RATIOS:
                line |= {k: row[k] for k in (key, f"{key}_paired") if k in row}
            if "peak_rss_mb" in row:
                line["peak_rss_mb"] = row["peak_rss_mb"]
            line |= {name: row[key]["p99"] for key, name in LIVE_P99 if key in row}
            for key, _, _ in LATENESS:
                measured = row.get(key) if key else row
                if measured and "lateness_ms" in measured:
                    line[f"{key or 'empty_state'}_lateness_p99_ms"] = measured["lateness_ms"]["p99"]
                    line["early_firings"] = line.get("early_firings", 0) + measured["early_firings"]
            if any(name.endswith(("_p99_ms", "_batched_offer")) for name in line):
                line["offer_linger_ms"] = results.get("offer_linger_ms", 5)
                if results.get("batched_offer_linger_ms"):
                    line["batched_offer_linger_ms"] = results["batched_offer_linger_ms"]
            if results.get("guarantee", "at_least_once") != "at_least_once":
                line["guarantee"] = results["guarantee"]
            if notes:
                line["notes"] = notes
            lines.append(line)
    return lines


def run_of(results: dict[str, Any], history: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The (date, commit) of the run in ``history`` whose rates are the results file's (every
    workload and contender with the same median and runs), or None. A run's lines share their
    date, commit and notes."""
    wanted = {
        (workload, contender, row["records_per_s"], tuple(row.get("runs", ())))
        for workload, by in results["workloads"].items()
        for contender, row in by.items()
    }
    runs: dict[tuple[str, str, str], set[tuple[str, str, int, tuple[int, ...]]]] = {}
    for line in history:
        key = (line["date"], line["commit"], line.get("notes", ""))
        found = (line["workload"], line["contender"], line["records_per_s"])
        runs.setdefault(key, set()).add((*found, tuple(line.get("runs", ()))))
    for (date, commit, _), lines in runs.items():
        if wanted and wanted <= lines:
            return date, commit
    return None


def print_history(history: list[dict[str, Any]]) -> None:
    """Every line: when, which tree, what, its rate and its ratios to the peers."""
    print(f"{'date':17} {'commit':8} {'workload':13} {'contender':11} {'rec/s':>9}  ratios")
    for line in history:
        ratios = ", ".join(
            f"{key.removeprefix('ratio_to_')} {line[key]}" for key in RATIOS if key in line
        )
        print(
            f"{line['date']:17} {line['commit'] or '?':8} {line['workload']:13} "
            f"{line['contender']:11} {line['records_per_s']:>9,}  {ratios}"
        )


# -- the command line ------------------------------------------------------------------------------


def _head() -> str | None:
    """The short hash of the checkout's HEAD, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.decode().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench.report",
        description="the docs' results tables and the history of runs of record",
    )
    parser.add_argument("--results", type=Path, default=LATEST, help="a results file")
    parser.add_argument("--history-file", type=Path, default=HISTORY, help=argparse.SUPPRESS)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--markdown", action="store_true", help="docs/benchmarks.md's (default)")
    action.add_argument("--summary", action="store_true", help="the README's table")
    action.add_argument("--write", action="store_true", help="put both in the docs")
    action.add_argument("--check", action="store_true", help="exit 1 if the docs differ")
    action.add_argument("--record", action="store_true", help="add the run to history.jsonl")
    action.add_argument("--history", action="store_true", help="print history.jsonl")
    parser.add_argument("--date", help="with --record: when it ran (default: the file's time)")
    parser.add_argument("--commit", help="with --record: the tree it ran on (default: HEAD)")
    parser.add_argument("--notes", help="with --record: a few words on the run")
    args = parser.parse_args(argv)
    if (args.date or args.commit or args.notes) and not args.record:
        parser.error("--date, --commit and --notes go with --record")
    history = read_history(args.history_file)
    if args.history:
        print_history(history)
        return 0
    results = json.loads(args.results.read_text())
    if args.record:
        if run_of(results, history):
            parser.error(f"{args.results} is in {args.history_file} already")
        stamp = datetime.fromtimestamp(args.results.stat().st_mtime, UTC)
        date = args.date or stamp.strftime("%Y-%m-%dT%H:%MZ")
        added = history_lines(results, date=date, commit=args.commit or _head(), notes=args.notes)
        with args.history_file.open("a") as out:
            out.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in added)
        print(f"{len(added)} lines added to {args.history_file}")
        return 0
    if not (args.write or args.check):
        print(RENDER["summary" if args.summary else "full"](results, history), end="")
        return 0
    stale: dict[Path, str] = {}  # document → its text with every block rendered
    for path, marker, kind in DOCS:
        text = stale.get(path) or path.read_text()
        rendered = RENDER[kind](results, history)
        if block(text, marker) != rendered:
            stale[path] = with_block(text, marker, rendered)
    for path, text in stale.items():
        if args.write:
            path.write_text(text)
        print(f"{path.relative_to(REPO)}: {'written' if args.write else 'differs'}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
