"""The operator commands of the ``waitline`` command line: ``replay``, ``dead-letters``,
``waits`` and ``status``. Parsing and printing only; the work is in ``waitline.replay``,
``waitline.deadletters`` and ``waitline.cluster``.

``--json`` prints what a script wants: one JSON object per line for lists, one object for a
command's result. Progress bars go to stderr, and only to a terminal.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemas.durations import DurationError, parse_duration
from waitline.cli import UsageError, _add_connection, _at_least, _settings
from waitline.progress import bar
from waitline.timespec import InstantError, format_age, format_ms, now_ms, parse_instant

if TYPE_CHECKING:
    from waitline.config import Settings
    from waitline.topics import Topics

__all__ = ["add_commands", "describe_cancel"]


def _prepare(args: argparse.Namespace) -> tuple[Settings, Topics]:
    """Settings and topics (their mistakes before Kafka is contacted), then a broker that
    answers."""
    from waitline.broker import wait_for_broker
    from waitline.topics import load_topics

    settings = _settings(args)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    wait_for_broker(settings.as_librdkafka_dict(), timeout=args.connect_timeout)
    return settings, topics


def _partitions(settings: Settings, topics: Topics) -> int:
    from confluent_kafka.admin import AdminClient

    from waitline.topics import check_copartitioned

    return check_copartitioned(AdminClient(settings.as_librdkafka_dict()), topics)


def _quiet_worker_logs(args: argparse.Namespace) -> None:
    """The worker's and the restore's info lines would tear through a progress bar."""
    if not args.verbose:
        logging.getLogger("waitline").setLevel(logging.WARNING)


def _instant(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_instant(text)
    except InstantError as exc:
        raise UsageError(f"{what}: {exc}") from None


def _ms(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise UsageError(f"{what}: {exc}") from None


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{question}: not confirmed (no terminal to ask); pass --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _print_json(value: Any) -> None:
    print(json.dumps(value, separators=(",", ":")))


def _json_lines(items: Iterator[dict[str, Any]], limit: int | None) -> int:
    count = 0
    for item in items:
        if limit is not None and count >= limit:
            break
        _print_json(item)
        count += 1
    return count


# -- replay ------------------------------------------------------------------------------------


def _prefix(args: argparse.Namespace) -> None:
    from waitline.replay import ReplayError, check_prefix

    try:
        check_prefix(args.prefix)
    except ReplayError as exc:
        raise UsageError(str(exc)) from None


def _start_point(args: argparse.Namespace) -> Any:
    from waitline.replay import StartPoint

    if args.from_offsets and args.from_time:
        raise UsageError("--from-offsets and --from-time: choose one")
    if args.from_time:
        return StartPoint(time=_instant(args.from_time, "--from-time"))
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


def _describe_plan(plan: Any) -> str:
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


def _print_comparison(comparison: Any, as_json: bool) -> None:
    if as_json:
        _print_json(comparison.as_dict())
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
    from waitline.replay import ReplayError, compare, plan_replay, replay_target, run_replay

    _prefix(args)
    start = _start_point(args)
    settings, _ = _prepare(args)
    _quiet_worker_logs(args)
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
            f"replay {target.prefix} interrupted: its state is kept; run the same command "
            "without a start point to continue it",
            file=sys.stderr,
        )
        return 130
    comparison = None
    if args.compare:
        with bar("reading resumes to compare") as progress:
            comparison = compare(target, first=args.show, bar=progress)
    if args.json:
        out: dict[str, Any] = {"plan": plan.as_dict(), "result": result.as_dict()}
        if comparison is not None:
            out["comparison"] = comparison.as_dict()
        _print_json(out)
    else:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items())) or "none"
        print(
            f"replayed {result.records} records in {result.seconds:.1f}s: outcomes {outcomes}; "
            f"{result.dead_letters} dead letters; {result.resumes_reemitted} resumes re-emitted"
        )
        if comparison is not None:
            _print_comparison(comparison, False)
    return 3 if comparison is not None and not comparison.equal else 0


def cmd_replay_compare(args: argparse.Namespace) -> int:
    from waitline.replay import ReplayError, compare, replay_target

    _prefix(args)
    settings, _ = _prepare(args)
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
    settings, _ = _prepare(args)
    try:
        target = replay_target(settings, args.prefix)
        question = (
            f"delete replay {target.prefix}: topics {', '.join(target.own_topics())}, "
            f"group {target.group_id} and {target.state_path}?"
        )
        if not _confirm(question, args.yes):
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


# -- dead letters ------------------------------------------------------------------------------


def _selection(args: argparse.Namespace, ids: tuple[tuple[int, int], ...] = ()) -> Any:
    from waitline.deadletters import Selection

    return Selection(
        ids=ids,
        reason=args.reason,
        role=args.source,
        since=_instant(args.since, "--since"),
        until=_instant(args.until, "--until"),
    )


def _letter_ids(texts: list[str]) -> tuple[tuple[int, int], ...]:
    from waitline.deadletters import DeadLetterError, letter_ids

    try:
        return letter_ids(texts)
    except DeadLetterError as exc:
        raise UsageError(str(exc)) from None


def _status_text(status: dict[str, Any] | None) -> str:
    if status is None:
        return "-"
    if status["state"] == "sent":
        return f"re-driven {format_ms(status['at'])} to {status['to']}"
    return f"claimed {format_ms(status['at'])}, not finished"


def cmd_dead_letters_list(args: argparse.Namespace) -> int:
    from waitline.deadletters import dead_letters, statuses

    selection = _selection(args)
    settings, topics = _prepare(args)
    redriven = statuses(settings, topics)
    count = 0
    with bar("reading dead letters") as progress:
        for letter in dead_letters(settings, topics, selection, bar=progress):
            if args.limit is not None and count >= args.limit:
                break
            count += 1
            status = redriven.get(letter.id)
            if args.json:
                _print_json({**letter.as_dict(full=True), "redriven": status})
                continue
            if count == 1:
                print(f"{'id':>8}  {'record time':24}  {'source':22}  reason")
            extra = "" if status is None else f"  [{_status_text(status)}]"
            source = letter.source or "(output)"
            when = format_ms(letter.timestamp)
            print(f"{letter.id:>8}  {when:24}  {source:22}  {letter.reason}{extra}")
    if not args.json:
        print(f"{count} dead letter{'s' * (count != 1)}", file=sys.stderr)
    return 0


def cmd_dead_letters_show(args: argparse.Namespace) -> int:
    from waitline.deadletters import DeadLetterError, find, statuses

    ((partition, offset),) = _letter_ids([args.id])
    settings, topics = _prepare(args)
    try:
        letter = find(settings, topics, partition, offset)
    except DeadLetterError as exc:
        raise UsageError(str(exc)) from None
    status = statuses(settings, topics).get(letter.id)
    if args.value:
        if letter.value is None:
            raise UsageError(f"dead letter {letter.id} has no value: {letter.redrive_problem()}")
        sys.stdout.buffer.write(letter.value)
        sys.stdout.buffer.flush()
        return 0
    if args.json:
        _print_json(
            {**letter.as_dict(full=True), "redriven": status, "problem": letter.redrive_problem()}
        )
        return 0
    rows = [
        ("dead letter", f"{letter.id} of {topics.dead_letters.name}"),
        ("record time", format_ms(letter.timestamp)),
        ("reason", letter.reason),
        ("source", letter.source or "none: an output the broker refused"),
    ]
    origin = letter.header("waitline.origin")
    if origin:
        rows.append(("origin", f"{origin} (the worker forwarded it from there)"))
    rows.append(("re-driven", _status_text(status) if status else "no"))
    problem = letter.redrive_problem()
    if problem:
        rows.append(("cannot re-drive", problem))
    rows.append(("key", repr(letter.key) if letter.key is not None else "none"))
    for header, raw in letter.user_headers():
        rows.append((f"header {header}", repr(raw) if raw is not None else "none"))
    for title, text in rows:
        print(f"{title + ':':16} {text}")
    if letter.value is None:
        print(f"{'value:':16} none")
    else:
        print("value:")
        try:
            print(json.dumps(json.loads(letter.value), indent=2, ensure_ascii=False))
        except ValueError:
            print(letter.value.decode(errors="replace"))
    return 0


def cmd_dead_letters_redrive(args: argparse.Namespace) -> int:
    from waitline.deadletters import DeadLetterError, dead_letters, redrive

    ids = _letter_ids(args.ids)
    selection = _selection(args, ids)
    filtered = (args.reason, args.source, args.since, args.until) != (None, None, None, None)
    if not ids and not filtered and not args.all:
        raise UsageError("name dead letters (their offsets) or filter them; --all for every one")
    edit = None
    if args.edit is not None:
        try:
            edit = Path(args.edit).read_bytes()
        except OSError as exc:
            raise UsageError(f"--edit: cannot read {args.edit}: {exc.strerror}") from None
    settings, topics = _prepare(args)
    try:
        with bar("reading dead letters") as progress:
            letters = list(dead_letters(settings, topics, selection, bar=progress))
        if not ids and letters and not _confirm(f"re-drive {len(letters)} dead letters?", args.yes):
            print("nothing re-driven", file=sys.stderr)
            return 1
        with bar("re-driving", len(letters)) as progress:
            report = redrive(settings, topics, letters, edit=edit, rekey=args.rekey, bar=progress)
    except DeadLetterError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        _print_json(report.as_dict())
    else:
        for item in report.redriven:
            print(f"re-drove {item['id']} to {item['to']}")
        for item in report.skipped:
            print(f"skipped {item['id']}: {item['why']}")
        for item in report.failed:
            print(f"failed {item['id']}: {item['error']}")
    print(report.summary(), file=sys.stderr)
    if report.failed or (ids and not report.redriven):
        return 1
    return 0


# -- waits and status --------------------------------------------------------------------------


def _wait_filter(args: argparse.Namespace) -> Any:
    from waitline.cluster import WaitFilter

    return WaitFilter(
        name=args.name,
        key_prefix=args.key_prefix,
        run_id=getattr(args, "run_id", None),
        older_than_ms=_ms(args.older_than, "--older-than"),
        newer_than_ms=_ms(args.newer_than, "--newer-than"),
    )


def _print_waits(waits: list[dict[str, Any]], now: int) -> None:
    if not waits:
        return
    print(f"{'part':>4}  {'waitId':30}  {'runId':20}  {'name|key':34}  {'age':>7}  deadline")
    for w in waits:
        pair = f"{w['name']}|{w['correlationKey']}"
        age = format_age(now - w["registeredAt"])
        print(
            f"{w['partition']:>4}  {w['waitId']:30}  {w['runId']:20}  {pair:34}  {age:>7}  "
            f"{format_ms(w['deadline'])}"
        )


def cmd_waits_list(args: argparse.Namespace) -> int:
    from waitline.cluster import buffered_events, open_view, pending_waits

    where = _wait_filter(args)
    settings, topics = _prepare(args)
    partitions = _partitions(settings, topics)
    _quiet_worker_logs(args)
    now = now_ms()
    with (
        bar("reading the changelog") as progress,
        open_view(settings, topics, list(range(partitions)), progress) as view,
    ):
        if args.what == "events":
            events = itertools.islice(buffered_events(view, where, now), args.limit)
            if args.json:
                count = _json_lines(events, None)
            else:
                listed = list(events)
                count = len(listed)
                for item in listed:
                    event = item["event"] or {}
                    print(
                        f"{item['partition']:>4}  {event.get('name')}|{event.get('correlationKey')}"
                        f"  {event.get('eventId')}  age {format_age(now - item['recordTime'])}"
                        f"  expires {format_ms(item['expiresAt'])}"
                    )
            noun = "buffered event"
        else:
            waits = itertools.islice(pending_waits(view, where, now), args.limit)
            if args.json:
                count = _json_lines(waits, None)
            else:
                taken = list(waits)
                _print_waits(taken, now)
                count = len(taken)
            noun = "pending wait"
    if not args.json:
        print(f"{count} {noun}{'s' * (count != 1)}", file=sys.stderr)
    return 0


def cmd_waits_cancel(args: argparse.Namespace) -> int:
    from waitline.client import Client
    from waitline.cluster import open_view, pending_waits

    where = _wait_filter(args)
    if where.empty and not args.all:
        raise UsageError("choose the waits to cancel with a filter, or --all for every one")
    settings, topics = _prepare(args)
    partitions = _partitions(settings, topics)
    _quiet_worker_logs(args)
    now = now_ms()
    with (
        bar("reading the changelog") as progress,
        open_view(settings, topics, list(range(partitions)), progress) as view,
    ):
        waits = list(pending_waits(view, where, now))
    if not waits:
        print("no pending wait matches", file=sys.stderr)
        if args.json:
            _print_json({"cancelled": 0, "waitIds": []})
        return 0
    if not args.json and not args.yes:
        _print_waits(waits[:10], now)
        if len(waits) > 10:
            print(f"... and {len(waits) - 10} more", file=sys.stderr)
    if not _confirm(f"cancel {len(waits)} pending wait{'s' * (len(waits) != 1)}?", args.yes):
        print("nothing cancelled", file=sys.stderr)
        return 1
    client = Client(settings, topics=topics)
    with bar("sending cancels", len(waits)) as progress:
        for w in waits:
            client.cancel_wait(w["waitId"], name=w["name"], correlation_key=w["correlationKey"])
            progress.advance()
        client.flush()
    if args.json:
        _print_json({"cancelled": len(waits), "waitIds": [w["waitId"] for w in waits]})
    print(f"sent {len(waits)} cancel command{'s' * (len(waits) != 1)}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from waitline.cluster import group_status

    settings, topics = _prepare(args)
    partitions = _partitions(settings, topics)
    _quiet_worker_logs(args)
    with bar("reading offsets and the changelog") as progress:
        status = group_status(
            settings, topics, partitions, with_state=not args.no_state, bar=progress
        )
    if args.json:
        _print_json(status.as_dict())
        return 0
    print(f"group {status.group_id}: {status.state}")
    if status.members is None:
        print("  members: not named by the broker (the embedded broker describes none)")
    elif not status.members:
        print("  members: none")
    for m in status.members or []:
        print(f"  member {m.member_id} ({m.client_id} on {m.host}): partitions {m.partitions}")
    print(
        f"{'part':>4}  {'events lag':>12}  {'commands lag':>12}  {'pending waits':>13}  "
        f"{'buffered events':>15}  member"
    )
    for row in status.partitions:
        lag = row.lag

        def show(value: int | None) -> str:
            return "-" if value is None else str(value)

        print(
            f"{row.partition:>4}  {show(lag.get('events')):>12}  "
            f"{show(lag.get('wait-commands')):>12}  {show(row.pending_waits):>13}  "
            f"{show(row.buffered_events):>15}  {row.member or '-'}"
        )
    return 0


def describe_cancel(
    args: argparse.Namespace, settings: Settings, wait_id: str, name: str, key: str
) -> str:
    """``waitline cancel``'s line on what the changelog says of the wait it cancels."""
    from waitline.cluster import lookup_wait
    from waitline.topics import load_topics

    topics = load_topics(settings.topics_file, settings.topic_prefix)
    partitions = _partitions(settings, topics)
    _quiet_worker_logs(args)
    with bar("reading the changelog") as progress:
        found = lookup_wait(settings, topics, partitions, wait_id, name, key, bar=progress)
    if found.status == "pending":
        return f"found: {found.describe()}; cancel sent"
    if found.status == "resolved":
        return f"not pending: {found.describe()}; the cancel does nothing"
    return (
        f"not found: no wait {wait_id} is pending on partition {found.partition} in the "
        "changelog; the cancel does nothing unless its registration is still on its way"
    )


# -- parser ------------------------------------------------------------------------------------


def _filters(parser: argparse.ArgumentParser, *, run_id: bool = True) -> None:
    parser.add_argument("--name", help="only this event name")
    parser.add_argument("--key-prefix", metavar="PREFIX", help="correlation keys starting so")
    if run_id:
        parser.add_argument("--run-id", help="only this run")
    parser.add_argument(
        "--older-than",
        metavar="DURATION",
        help="registered (events: appended) at least this long ago",
    )
    parser.add_argument(
        "--newer-than",
        metavar="DURATION",
        help="registered (events: appended) at most this long ago",
    )


def _letter_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", metavar="TEXT", help="reason contains TEXT (any case)")
    parser.add_argument(
        "--source", choices=["events", "wait-commands"], help="read from this topic"
    )
    parser.add_argument(
        "--since", metavar="WHEN", help="record time at or after (ISO-8601, epoch ms, or 2h: ago)"
    )
    parser.add_argument("--until", metavar="WHEN", help="record time before (same forms)")


def _group(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group-id", help="the workers' consumer group (default waitline)")


def add_commands(sub: Any) -> None:
    """Add the operator commands to the ``waitline`` parser's subcommands."""
    replay = sub.add_parser("replay", help="rebuild state from the inputs into a new group")
    replay_sub = replay.add_subparsers(dest="replay_command", metavar="ACTION", required=True)
    run = replay_sub.add_parser("run", help="run (or continue) a replay up to the inputs' ends")
    compare = replay_sub.add_parser("compare", help="compare a replay's resumes with the live ones")
    drop = replay_sub.add_parser("discard", help="delete a replay's topics, group and state")
    for parser in (run, compare, drop):
        parser.add_argument(
            "--prefix",
            required=True,
            help="names the replay: its group, state and topics are the live ones' with it",
        )
        parser.add_argument(
            "--state-dir",
            help="RocksDB directory; the replay's stores go under it (default .waitline/state)",
        )
        _group(parser)
        _add_connection(parser)
    run.add_argument(
        "--from-offsets",
        action="append",
        metavar="ROLE/P=OFFSET,...",
        help="start these input partitions here (events/3=1042); the others at the beginning",
    )
    run.add_argument(
        "--from-time", metavar="WHEN", help="start at the first record at or after WHEN"
    )
    run.add_argument(
        "--compare", action="store_true", help="then compare its resumes with the live ones"
    )
    for parser in (run, compare):
        parser.add_argument(
            "--show", type=_at_least(0), default=5, metavar="N", help="differences to list (5)"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")
    drop.add_argument("--yes", action="store_true", help="do not ask")
    run.set_defaults(func=cmd_replay_run)
    compare.set_defaults(func=cmd_replay_compare)
    drop.set_defaults(func=cmd_replay_discard)

    letters = sub.add_parser("dead-letters", help="list, show and re-drive dead letters")
    letters_sub = letters.add_subparsers(dest="letters_command", metavar="ACTION", required=True)
    listing = letters_sub.add_parser("list", help="list dead letters, with their reasons")
    _letter_filters(listing)
    listing.add_argument("--limit", type=_at_least(1), default=None, help="at most this many")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = letters_sub.add_parser("show", help="one dead letter: its record, reason and source")
    show.add_argument("id", metavar="ID", help="its offset, or partition/offset")
    form = show.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print one JSON object")
    form.add_argument("--value", action="store_true", help="print only its value (to edit it)")
    again = letters_sub.add_parser("redrive", help="send dead letters to their topic again, once")
    again.add_argument("ids", nargs="*", metavar="ID", help="offsets (or partition/offset)")
    _letter_filters(again)
    again.add_argument("--all", action="store_true", help="every dead letter (no filter needed)")
    again.add_argument("--edit", metavar="FILE", help="send FILE's content as the value (one ID)")
    again.add_argument(
        "--rekey", action="store_true", help="key the record by its body's name|correlationKey"
    )
    again.add_argument("--yes", action="store_true", help="do not ask (filters only)")
    again.add_argument("--json", action="store_true", help="print one JSON object")
    for parser in (listing, show, again):
        _add_connection(parser)
    listing.set_defaults(func=cmd_dead_letters_list)
    show.set_defaults(func=cmd_dead_letters_show)
    again.set_defaults(func=cmd_dead_letters_redrive)

    waits = sub.add_parser("waits", help="pending waits across the cluster (from the changelog)")
    waits_sub = waits.add_subparsers(dest="waits_command", metavar="ACTION", required=True)
    wl = waits_sub.add_parser("list", help="pending waits of every partition")
    we = waits_sub.add_parser("events", help="buffered events of every partition")
    wc = waits_sub.add_parser("cancel", help="cancel the pending waits the filters take")
    _filters(wl)
    _filters(we, run_id=False)
    _filters(wc)
    for parser in (wl, we):
        parser.add_argument("--limit", type=_at_least(1), default=None, help="at most this many")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
    wc.add_argument("--all", action="store_true", help="every pending wait (no filter needed)")
    wc.add_argument("--yes", action="store_true", help="do not ask")
    wc.add_argument("--json", action="store_true", help="print one JSON object")
    for parser in (wl, we, wc):
        _group(parser)
        _add_connection(parser)
    wl.set_defaults(func=cmd_waits_list, what="waits")
    we.set_defaults(func=cmd_waits_list, what="events")
    wc.set_defaults(func=cmd_waits_cancel)

    status = sub.add_parser("status", help="group members, lag and pending counts per partition")
    status.add_argument("--no-state", action="store_true", help="skip reading the changelog")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    _group(status)
    _add_connection(status)
    status.set_defaults(func=cmd_status)
