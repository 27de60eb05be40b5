"""``waitline replay run|compare|discard``: parsing and printing (the work: ``waitline.replay``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from waitline.cli import EXIT_INTERRUPTED, UsageError
from waitline.opscli import confirm, instant, prepare, print_json, quiet_worker_logs
from waitline.progress import bar
from waitline.timespec import format_ms

if TYPE_CHECKING:
    from waitline.replay import ReplayPlan, StartPoint
    from waitline.replaycompare import Comparison


def _prefix(args: argparse.Namespace) -> None:
    from waitline.replay import ReplayError, check_prefix

    try:
        check_prefix(args.prefix)
    except ReplayError as exc:
        raise UsageError(str(exc)) from None


def _start_point(args: argparse.Namespace) -> StartPoint:
    from waitline.replay import StartPoint

    if args.from_offsets and args.from_time:
        raise UsageError("--from-offsets and --from-time: choose one")
    if args.from_time:
        return StartPoint(time=instant(args.from_time, "--from-time"))
    if not args.from_offsets:
        return StartPoint()
    offsets: dict[str, dict[int, int]] = {}
    for spec in args.from_offsets:
        for item in filter(None, (part.strip() for part in spec.split(","))):
            where, _, offset = item.partition("=")
            role, _, partition = where.rpartition("/")
            if role not in ("events", "wait-commands") or not partition.isdigit():
                raise UsageError(
                    f"--from-offsets {item!r}: use ROLE/PARTITION=OFFSET, ROLE events or "
                    "wait-commands (events/3=1042)"
                )
            if not offset.isdigit():
                raise UsageError(f"--from-offsets {item!r}: the offset is not a whole number")
            offsets.setdefault(role, {})[int(partition)] = int(offset)
    return StartPoint(offsets=offsets)


def _describe_plan(plan: ReplayPlan) -> str:
    target = plan.target
    if plan.continuing:
        start = "where it stopped (continuing)"
    elif plan.start_time is not None and plan.methods:
        how = sorted({m for by in plan.methods.values() for m in by.values()})
        start = f"{format_ms(plan.start_time)} (offsets found by {'/'.join(how)})"
    elif plan.seeded:
        start = "the offsets given (others from the beginning)"
    else:
        start = "the beginning"
    lines = [
        f"replay {target.prefix}: group {target.group_id}, state {target.state_path}",
        f"  topics: {', '.join(target.own_topics())}",
        f"  from {start}; to the inputs' ends as of now: {plan.total} records",
    ]
    if plan.seeded:
        lines.append(
            "  starting past the beginning, from empty state: waits registered and events "
            "buffered before that point are unknown to the replay"
        )
    return "\n".join(lines)


def _print_comparison(comparison: Comparison, as_json: bool) -> None:
    if as_json:
        print_json(comparison.as_dict())
        return
    lower, upper = comparison.window
    window = f"registered from {format_ms(lower)}, " if lower is not None else ""
    print(f"compared resumes {window}resolved before {format_ms(upper)}:")
    print(
        f"  same {comparison.same}; only in the replay {comparison.only_replay}; "
        f"only in the live run {comparison.only_live}"
    )
    left = comparison.left_out
    if left["live"] or left["replay"]:
        print(f"  outside the window: {left['live']} live, {left['replay']} replayed")
    for title, items in (
        ("only in the replay", comparison.first_only_replay),
        ("only in the live run", comparison.first_only_live),
    ):
        if items:
            print(f"  first {len(items)} {title}:")
            for item in items:
                event = f" event {item['eventId']}" if item["eventId"] else ""
                print(f"    {item['waitId']} {item['outcome']}{event} (resume {item['resumeId']})")


def cmd_replay_run(args: argparse.Namespace) -> int:
    from waitline.replay import ReplayError, plan_replay, replay_target, run_replay
    from waitline.replaycompare import compare

    _prefix(args)
    start = _start_point(args)
    settings, _ = prepare(args)
    quiet_worker_logs(args)
    try:
        target = replay_target(settings, args.prefix)
        with bar("finding where the inputs start and end") as progress:
            plan = plan_replay(target, start, bar=progress)
    except ReplayError as exc:
        raise UsageError(str(exc)) from None
    print(_describe_plan(plan), file=sys.stderr)
    try:
        with bar(f"replaying into {target.group_id}", plan.total) as progress:
            result = run_replay(plan, bar=progress)
    except KeyboardInterrupt:
        print(
            f"waitline: interrupted; replay {target.prefix} keeps its state (run it again "
            "without a start point to continue it)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    comparison = None
    if args.compare:
        with bar("reading resumes to compare") as progress:
            comparison = compare(target, first=args.show, bar=progress)
    if args.json:
        out: dict[str, Any] = {"plan": plan.as_dict(), "result": result.as_dict()}
        if comparison is not None:
            out["comparison"] = comparison.as_dict()
        print_json(out)
    else:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items())) or "none"
        if plan.total == 0:
            print("nothing to replay: the replay has reached the inputs' ends")
        else:
            print(
                f"replayed {result.records} records in {result.seconds:.1f}s: outcomes "
                f"{outcomes}; {result.dead_letters} dead letters; {result.resumes_reemitted} "
                "resumes re-emitted"
            )
        if comparison is not None:
            _print_comparison(comparison, False)
    return 3 if comparison is not None and not comparison.equal else 0


def cmd_replay_compare(args: argparse.Namespace) -> int:
    from waitline.replay import ReplayError, replay_target
    from waitline.replaycompare import compare

    _prefix(args)
    settings, _ = prepare(args)
    try:
        target = replay_target(settings, args.prefix)
        with bar("reading resumes to compare") as progress:
            comparison = compare(target, first=args.show, bar=progress)
    except ReplayError as exc:
        raise UsageError(str(exc)) from None
    _print_comparison(comparison, args.json)
    return 0 if comparison.equal else 3


def cmd_replay_discard(args: argparse.Namespace) -> int:
    from waitline.replay import ReplayError, discard, replay_target

    _prefix(args)
    settings, _ = prepare(args)
    try:
        target = replay_target(settings, args.prefix)
        question = (
            f"delete replay {target.prefix}: topics {', '.join(target.own_topics())}, "
            f"group {target.group_id} and {target.state_path}?"
        )
        if not confirm(question, args.yes):
            print("nothing deleted", file=sys.stderr)
            return 1
        removed = discard(target)
    except ReplayError as exc:
        raise UsageError(str(exc)) from None
    for item in removed:
        print(f"deleted {item}")
    if not removed:
        print("nothing to delete")
    return 0
