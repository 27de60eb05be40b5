"""``waitline waits list|events|cancel``, ``waitline status`` and the lookup of ``waitline cancel``:
parsing and printing (the work: ``waitline.cluster``)."""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import TYPE_CHECKING, Any

from waitline.cli import UsageError
from waitline.opscli import (
    confirm,
    duration_ms,
    json_lines,
    partitions_of,
    prepare,
    print_json,
    quiet_worker_logs,
)
from waitline.progress import bar
from waitline.timespec import format_age, format_ms, now_ms

if TYPE_CHECKING:
    from waitline.cluster import WaitFilter
    from waitline.config import Settings


def _wait_filter(args: argparse.Namespace) -> WaitFilter:
    from waitline.cluster import WaitFilter

    return WaitFilter(
        name=args.name,
        key_prefix=args.key_prefix,
        run_id=getattr(args, "run_id", None),
        older_than_ms=duration_ms(args.older_than, "--older-than"),
        newer_than_ms=duration_ms(args.newer_than, "--newer-than"),
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
    settings, topics = prepare(args)
    partitions = partitions_of(settings, topics)
    quiet_worker_logs(args)
    now = now_ms()
    with (
        bar("reading the changelog") as progress,
        open_view(settings, topics, list(range(partitions)), progress) as view,
    ):
        if args.what == "events":
            events = itertools.islice(buffered_events(view, where, now), args.limit)
            if args.json:
                count = json_lines(events, None)
            else:
                listed = list(events)
                count = len(listed)
                if listed:
                    print(f"{'part':>4}  {'eventId':36}  {'name|key':34}  {'age':>7}  expires")
                for item in listed:
                    event = item["event"] or {}
                    pair = f"{event.get('name')}|{event.get('correlationKey')}"
                    age = format_age(now - item["recordTime"])
                    print(
                        f"{item['partition']:>4}  {event.get('eventId')!s:36}  {pair:34}  "
                        f"{age:>7}  {format_ms(item['expiresAt'])}"
                    )
            noun = "buffered event"
        else:
            waits = itertools.islice(pending_waits(view, where, now), args.limit)
            if args.json:
                count = json_lines(waits, None)
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
    settings, topics = prepare(args)
    partitions = partitions_of(settings, topics)
    quiet_worker_logs(args)
    now = now_ms()
    with (
        bar("reading the changelog") as progress,
        open_view(settings, topics, list(range(partitions)), progress) as view,
    ):
        waits = list(pending_waits(view, where, now))
    if not waits:
        print("no pending wait matches", file=sys.stderr)
        if args.json:
            print_json({"cancelled": 0, "waitIds": []})
        return 0
    if not args.json and not args.yes:
        _print_waits(waits[:10], now)
        if len(waits) > 10:
            print(f"... and {len(waits) - 10} more", file=sys.stderr)
    if not confirm(f"cancel {len(waits)} pending wait{'s' * (len(waits) != 1)}?", args.yes):
        print("nothing cancelled", file=sys.stderr)
        return 1
    client = Client(settings, topics=topics)
    with bar("sending cancels", len(waits)) as progress:
        for w in waits:
            client.cancel_wait(w["waitId"], name=w["name"], correlation_key=w["correlationKey"])
            progress.advance()
        client.flush()
    if args.json:
        print_json({"cancelled": len(waits), "waitIds": [w["waitId"] for w in waits]})
    print(f"sent {len(waits)} cancel command{'s' * (len(waits) != 1)}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from waitline.cluster import group_status

    settings, topics = prepare(args)
    partitions = partitions_of(settings, topics)
    quiet_worker_logs(args)
    with bar("reading offsets and the changelog") as progress:
        status = group_status(
            settings, topics, partitions, with_state=not args.no_state, bar=progress
        )
    if args.json:
        print_json(status.as_dict())
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
    partitions = partitions_of(settings, topics)
    quiet_worker_logs(args)
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
