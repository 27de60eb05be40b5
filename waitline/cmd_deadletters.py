"""``waitline dead-letters list|show|redrive``: parsing and printing (the work:
``waitline.deadletters``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from waitline.cli import UsageError
from waitline.opscli import confirm, instant, prepare, print_json
from waitline.progress import bar
from waitline.timespec import format_ms

if TYPE_CHECKING:
    from waitline.deadletters import Selection


def _selection(args: argparse.Namespace, ids: tuple[tuple[int, int], ...] = ()) -> Selection:
    from waitline.deadletters import Selection

    return Selection(
        ids=ids,
        reason=args.reason,
        role=args.source,
        since=instant(args.since, "--since"),
        until=instant(args.until, "--until"),
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
    settings, topics = prepare(args)
    redriven = statuses(settings, topics)
    count = 0
    with bar("reading dead letters") as progress:
        for letter in dead_letters(settings, topics, selection, bar=progress):
            if args.limit is not None and count >= args.limit:
                break
            count += 1
            status = redriven.get(letter.id)
            if args.json:
                print_json({**letter.as_dict(full=True), "redriven": status})
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
    settings, topics = prepare(args)
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
        print_json(
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
    settings, topics = prepare(args)
    try:
        with bar("reading dead letters") as progress:
            letters = list(dead_letters(settings, topics, selection, bar=progress))
        if not ids and letters and not confirm(f"re-drive {len(letters)} dead letters?", args.yes):
            print("nothing re-driven", file=sys.stderr)
            return 1
        with bar("re-driving", len(letters)) as progress:
            report = redrive(settings, topics, letters, edit=edit, rekey=args.rekey, bar=progress)
    except DeadLetterError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print_json(report.as_dict())
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
