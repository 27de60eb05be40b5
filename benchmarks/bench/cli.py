"""The command line of ``make bench`` (``python -m benchmarks.bench``) and the run it asks for."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from waitline.broker import EmbeddedBroker
from waitline.topics import Topics

from .contenders import CONTENDERS
from .live import LIBRDKAFKA_LINGER_MS, live_latency, timeout_lateness
from .measure import measure
from .profile import run_profile
from .summary import LATENESS, chart, lateness_line, machine_info, print_table, summarize
from .trace import trace_line
from .workloads import RESULTS, WORKLOADS, fresh_topics


def _trace_path(args: argparse.Namespace, tmp: Path, contender: str) -> Path | None:
    """Where a traced waitline writes its record (``--trace``; only waitline is traced)."""
    if not args.trace or contender != "waitline":
        return None
    return tmp / f"trace-{uuid.uuid4().hex[:8]}.json"


def _rates(spec: str | None) -> list[float]:
    """``--latency-at`` / ``--lateness-at``: comma-separated rates per second."""
    return [float(rate) for rate in spec.split(",")] if spec else []


@contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A fresh ``/tmp/waitline-NAME-xxxxxxxx`` for a run's broker log, worker logs and stores:
    removed when the run ends without an exception (they take 10s to 100s of MiB a run), kept
    and named on stderr when it raises."""
    tmp = Path(f"/tmp/waitline-{name}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        print(f"{name}: the logs and state directories are kept in {tmp}", file=sys.stderr)
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="waitline vs the ceiling vs faust-streaming",
    )
    parser.add_argument("--bootstrap", help="a running broker (default: embedded Tansu)")
    parser.add_argument("--runs", type=int, default=3, help="runs per contender (median)")
    parser.add_argument("--scale", type=float, default=1.0, help="input size factor")
    parser.add_argument("--faust-window", type=float, default=20.0, help="seconds per Faust run")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--no-faust", action="store_true")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--profile", action="store_true", help="profile waitline instead")
    parser.add_argument(
        "--latency-at",
        metavar="RATES",
        help="only the match latency (waitline's, or --latency-of's) at these rates/s",
    )
    parser.add_argument(
        "--latency-of",
        metavar="CONTENDERS",
        help="with --latency-at: whose latency, one after the other at each rate (default "
        "waitline; ceiling,waitline gives the broker's floor beside waitline's)",
    )
    parser.add_argument(
        "--lateness-at", metavar="RATES", help="only waitline's timeout lateness at these waits/s"
    )
    parser.add_argument(
        "--lateness-pending",
        type=int,
        default=0,
        metavar="N",
        help="with --lateness-at: N waits with a 1 h timeout applied first (default 0)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="with --latency-at/--lateness-at: also where waitline's time goes (its loop's "
        "phases, each timer's stages, GC pauses, each process's CPU), through "
        "benchmarks/traced_worker.py",
    )
    parser.add_argument(
        "--offer-linger",
        type=int,
        default=LIBRDKAFKA_LINGER_MS,
        metavar="MS",
        help="linger.ms of the producer offering the live streams (default 5, librdkafka's)",
    )
    parser.add_argument(
        "--batched-offer-linger",
        type=int,
        default=50,
        metavar="MS",
        help="the ceiling's and waitline's latency and lateness again with the offer at this "
        "linger.ms (default 50; 0: not)",
    )
    parser.add_argument(
        "--keep-broker",
        action="store_true",
        help="measure latency and lateness on the embedded broker as the throughput runs left "
        "it, instead of restarting it empty for each",
    )
    parser.add_argument(
        "--output", default="latest", help="results file name under benchmarks/results/"
    )
    args = parser.parse_args(argv)

    def known(flag: str, names: str) -> list[str]:
        """The contenders a flag names, each one of CONTENDERS (else one line, exit 2)."""
        listed = names.split(",")
        unknown = sorted(set(listed) - set(CONTENDERS))
        if unknown:
            parser.error(
                f"{flag}: no contender {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(CONTENDERS)})"
            )
        return listed

    named = known("--contenders", args.contenders)
    if len(set(named)) < len(named):
        parser.error("--contenders: a contender named twice (each runs once a round)")
    if args.lateness_pending and not args.lateness_at:
        parser.error("--lateness-pending goes with --lateness-at")
    if args.lateness_pending < 0:
        parser.error("--lateness-pending: a number of waits, 0 or more")
    if args.trace and not (args.latency_at or args.lateness_at):
        parser.error("--trace goes with --latency-at or --lateness-at")
    if args.latency_of is not None:
        if not args.latency_at:
            parser.error("--latency-of goes with --latency-at")
        known("--latency-of", args.latency_of)
    with scratch_dir("bench") as tmp:
        return run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> int:
    """The benchmark ``main`` asked for, with ``tmp`` for logs and stores."""
    broker = None if args.bootstrap else EmbeddedBroker(log_path=tmp / "broker.log")
    results: dict[str, Any] = {
        "workloads": {},
        "machine": machine_info(args.bootstrap),
        "command": "python -m benchmarks.bench " + " ".join(sys.argv[1:]),
        "offer_linger_ms": args.offer_linger,
        "batched_offer_linger_ms": args.batched_offer_linger,
        "live_on_restarted_broker": not args.bootstrap and not args.keep_broker,
    }
    try:
        bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
        if args.profile:
            return run_profile(bootstrap, args.scale, tmp)
        linger, batched = args.offer_linger, args.batched_offer_linger
        n = int(100_000 * args.scale)  # the waits of a timeout-lateness measurement
        restarts, used = 0, False

        def live_topics() -> tuple[str, Topics, str]:
            """Fresh topics for a live measurement, on a restarted (empty) embedded broker, so
            no contender pays for what the others wrote before it: in one run on a filled
            broker the live figures were several times worse than on a fresh one right after
            (docs/embedded-broker.md). A broker given by
            --bootstrap is used as it is."""
            nonlocal broker, bootstrap, restarts, used
            if broker is not None and used and not args.keep_broker:
                broker.stop()
                restarts += 1
                broker = EmbeddedBroker(log_path=tmp / f"broker-{restarts}.log")
                bootstrap = broker.start()
            used = True
            return (bootstrap, *fresh_topics(bootstrap))

        def live_pid() -> int | None:
            """The embedded broker's process (after live_topics: it may have restarted)."""
            return broker.pid if broker is not None else None

        def latency(
            contender: str, rate: float, offer_linger: int, trace: Path | None = None
        ) -> dict[str, Any]:
            """A contender's match latency at ``rate`` records/s on fresh topics (live_topics)."""
            where, pid = live_topics(), live_pid()
            return live_latency(
                contender,
                *where,
                rate,
                tmp,
                args.latency_seconds,
                linger_ms=offer_linger,
                trace=trace,
                broker_pid=pid,
            )

        def lateness(
            rate: float, pending: int, linger_ms: int, trace: Path | None = None
        ) -> dict[str, Any]:
            """Waitline's timeout lateness at ``rate`` waits/s on fresh topics (live_topics)."""
            where, pid = live_topics(), live_pid()
            return timeout_lateness(
                *where,
                n,
                rate,
                tmp,
                pending=pending,
                linger_ms=linger_ms,
                trace=trace,
                broker_pid=pid,
            )

        if args.latency_at or args.lateness_at:
            for rate in _rates(args.latency_at):
                for contender in (args.latency_of or "waitline").split(","):
                    found = latency(contender, rate, linger, _trace_path(args, tmp, contender))
                    traced = trace_line(found)
                    found.pop("trace", None)
                    print(
                        f"{contender} at {rate:,.0f} records/s offered: {found}{traced}",
                        flush=True,
                    )
            for rate in _rates(args.lateness_at):
                pending = args.lateness_pending
                late = lateness(rate, pending, linger, _trace_path(args, tmp, "waitline"))
                with_pending = f" with {pending:,} pending" if pending else ""
                print(
                    f"waitline timeouts at {rate:,.0f} waits/s{with_pending}: {lateness_line(late)}"
                    f"{trace_line(late)}",
                    flush=True,
                )
            return 0
        for workload in args.workloads.split(","):
            contenders = [
                c
                for c in args.contenders.split(",")
                # 1M waits at Faust's ~3k/s would take ~6 minutes just to load
                if not (c == "faust" and (args.no_faust or workload == "large-state"))
            ]
            runs: dict[str, list[float]] = {c: [] for c in contenders}
            peaks: dict[str, list[float]] = {c: [] for c in contenders}
            # Round by round, every contender once a round: the machine's speed drifts by
            # ±15% within minutes, and a contender's runs taken one after the other would put
            # that drift between the contenders, into every ratio (docs/benchmarks.md).
            for round_number in range(1, args.runs + 1):
                for contender in contenders:
                    topics, prefix = fresh_topics(bootstrap)
                    used = True
                    window = args.faust_window if contender == "faust" else None
                    rate, peak = measure(
                        contender, bootstrap, topics, prefix, workload, args.scale, tmp, window
                    )
                    runs[contender].append(rate)
                    peaks[contender].append(peak)
                    print(
                        f"{workload:13} {contender:11} round {round_number}: {rate:>9,.0f} rec/s",
                        flush=True,
                    )
            rows = summarize(workload, runs, peaks)
            for contender, row in rows.items():
                print(
                    f"{workload:13} {contender:11} {row['records_per_s']:>9,} rec/s "
                    f"runs={row['runs']} peak_rss={row['peak_rss_mb']} MiB",
                    flush=True,
                )
            if workload == "match-heavy" and not args.no_latency:
                half = {name: max(50.0, row["records_per_s"] / 2) for name, row in rows.items()}
                plan = []  # (contender, suffix of the result's key, offered records/s)
                for contender in rows:
                    if contender == "waitline-2p":
                        continue  # the targets are per process; its latency is the broker's too
                    plan.append((contender, "", half[contender]))
                    if contender == "ceiling" and "waitline" in rows:
                        # The broker's floor at waitline's load: one consume → produce hop with
                        # no state, offered what waitline is offered.
                        plan.append((contender, "_at_waitline_rate", half["waitline"]))
                for contender, suffix, rate in plan:
                    row = rows[contender]
                    offers = [("latency_ms", linger)]
                    if batched and contender != "faust":
                        offers.append(("latency_ms_batched_offer", batched))
                    for key, offer_linger in offers:
                        key += suffix
                        row[key] = latency(contender, rate, offer_linger)
                        print(
                            f"{workload:13} {contender:9} {key}, offer at linger.ms "
                            f"{offer_linger}: {row[key]}",
                            flush=True,
                        )
            if workload == "timeouts" and "waitline" not in rows:
                print("timeouts: waitline is not among --contenders; no timeout lateness")
            elif workload == "timeouts":
                w = rows["waitline"]
                # Each wait is two input records (its registration and, once due, its timer
                # command, which the workload's offsets count too): half the maximum in waits/s.
                rate = max(100.0, w["records_per_s"] / 4)
                for key, preloaded, batched_offer in LATENESS:
                    if batched_offer and not batched:
                        continue
                    pending = int(1_000_000 * args.scale) if preloaded else 0
                    offer_linger = batched if batched_offer else linger
                    found = lateness(rate, pending, offer_linger)
                    if key:
                        w[key] = found
                    else:
                        w |= found
                    print(
                        f"timeouts, {pending:,} pending waits, offer at linger.ms "
                        f"{offer_linger}: {lateness_line(found)}",
                        flush=True,
                    )
            results["workloads"][workload] = rows
        small = results["workloads"].get("match-heavy", {}).get("waitline")
        large = results["workloads"].get("large-state", {}).get("waitline")
        if small and large:
            large["ratio_to_small_state"] = round(
                large["records_per_s"] / max(small["records_per_s"], 1), 3
            )
        hot = results["workloads"].get("hot-pair", {}).get("waitline")
        if small and hot:
            hot["ratio_to_match_heavy"] = round(
                hot["records_per_s"] / max(small["records_per_s"], 1), 3
            )
        recovery = RESULTS / "recovery.json"
        if recovery.exists():
            results["restore"] = json.loads(recovery.read_text())
        RESULTS.mkdir(parents=True, exist_ok=True)
        results["guarantee"] = os.environ.get("WAITLINE_GUARANTEE", "at_least_once")
        (RESULTS / f"{args.output}.json").write_text(json.dumps(results, indent=2) + "\n")
        chart(results, RESULTS / f"{args.output}.png")
        print_table(results)
        return 0
    finally:
        if broker is not None:
            broker.stop()
