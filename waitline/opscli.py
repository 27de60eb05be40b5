"""The operator commands of the ``waitline`` command line: ``replay``, ``dead-letters``,
``waits`` and ``status``: their parsers, and what their handlers share. The handlers are in
``waitline.cmd_replay``, ``waitline.cmd_deadletters`` and ``waitline.cmd_cluster``; the work in
``waitline.replay``, ``waitline.deadletters`` and ``waitline.cluster``.

``--json`` prints what a script wants: one JSON object per line for lists, one object for a
command's result. Progress bars go to stderr, and only to a terminal.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from waitline.cli import UsageError, _add_connection, _at_least, _settings
from waitline.schemas.durations import DurationError, parse_duration
from waitline.timespec import InstantError, parse_instant

if TYPE_CHECKING:
    from waitline.config import Settings
    from waitline.topics import Topics

__all__ = [
    "add_commands",
    "confirm",
    "duration_ms",
    "instant",
    "json_lines",
    "partitions_of",
    "prepare",
    "print_json",
    "quiet_worker_logs",
]


def prepare(args: argparse.Namespace) -> tuple[Settings, Topics]:
    """Settings and topics (their mistakes before Kafka is contacted), then a broker that
    answers."""
    from waitline.broker import wait_for_broker
    from waitline.topics import load_topics

    settings = _settings(args)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    wait_for_broker(settings.as_librdkafka_dict(), timeout=args.connect_timeout)
    return settings, topics


def partitions_of(settings: Settings, topics: Topics) -> int:
    from confluent_kafka.admin import AdminClient

    from waitline.topics import check_copartitioned

    return check_copartitioned(AdminClient(settings.as_librdkafka_dict()), topics)


def quiet_worker_logs(args: argparse.Namespace) -> None:
    """The worker's and the restore's info lines would tear through a progress bar."""
    if not args.verbose:
        logging.getLogger("waitline").setLevel(logging.WARNING)


def instant(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_instant(text)
    except InstantError as exc:
        raise UsageError(f"{what}: {exc}") from None


def duration_ms(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise UsageError(f"{what}: {exc}") from None


def confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{question}: not confirmed (no terminal to ask); pass --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def print_json(value: Any) -> None:
    print(json.dumps(value, separators=(",", ":")))


def json_lines(items: Iterator[dict[str, Any]], limit: int | None) -> int:
    count = 0
    for item in items:
        if limit is not None and count >= limit:
            break
        print_json(item)
        count += 1
    return count


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
    from waitline.cmd_cluster import cmd_status, cmd_waits_cancel, cmd_waits_list
    from waitline.cmd_deadletters import (
        cmd_dead_letters_list,
        cmd_dead_letters_redrive,
        cmd_dead_letters_show,
    )
    from waitline.cmd_replay import cmd_replay_compare, cmd_replay_discard, cmd_replay_run

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
