"""The operator tools' pure parts: dead letters and their re-drive markers, wait filters,
times as typed, progress bars kept off a stderr that is no terminal."""

from __future__ import annotations

import json

import pytest

from waitline.cluster import WaitFilter
from waitline.deadletters import (
    DeadLetter,
    DeadLetterError,
    Marker,
    Selection,
    _current_attempt,
    check_edit,
    parse_id,
    redrive_status,
)
from waitline.processors.state import PendingWait
from waitline.progress import bar
from waitline.schemas.keys import make_key
from waitline.timespec import InstantError, format_age, format_ms, parse_instant

REASON = ("waitline.error", b"invalid wait command: timeout: bad duration")


def _letter(**fields: object) -> DeadLetter:
    defaults: dict[str, object] = {
        "partition": 0,
        "offset": 7,
        "timestamp": 1_000,
        "key": make_key("fix.me", "k"),
        "value": b'{"waitId": "w"}',
        "headers": (("trace", b"t-1"), REASON, ("waitline.source", b"wait-commands/3/42")),
    }
    defaults.update(fields)
    return DeadLetter(**defaults)  # type: ignore[arg-type]


def test_a_dead_letter_names_its_reason_source_and_role() -> None:
    letter = _letter()
    assert letter.id == "0/7"
    assert letter.reason.startswith("invalid wait command")
    assert (letter.source, letter.role) == ("wait-commands/3/42", "wait-commands")
    assert letter.redrive_problem() is None
    assert letter.user_headers() == (("trace", b"t-1"),)
    assert letter.as_dict()["headers"][0] == ["trace", "t-1"]


def test_a_reference_is_redriven_only_with_a_new_value() -> None:
    reference = _letter(
        value=None,
        headers=(REASON, ("waitline.source", b"events/1/5"), ("waitline.size", b"2000000")),
    )
    assert reference.reference
    problem = reference.redrive_problem()
    assert problem is not None and "too large" in problem and "events/1/5" in problem
    assert reference.redrive_problem(edited=True) is None


def test_a_refused_output_is_never_redriven() -> None:
    output = _letter(value=None, headers=(("waitline.error", b"output to resumes refused"),))
    assert output.role is None
    assert "not an input" in (output.redrive_problem(edited=True) or "")


def test_selection_filters() -> None:
    letter = _letter()
    assert Selection(reason="BAD DURATION").matches(letter)
    assert not Selection(reason="mis-keyed").matches(letter)
    assert Selection(role="wait-commands", since=1_000, until=1_001).matches(letter)
    assert not Selection(role="events").matches(letter)
    assert not Selection(until=1_000).matches(letter)
    assert Selection(ids=((0, 7),)).matches(letter) and not Selection(ids=((0, 8),)).matches(letter)


def test_ids() -> None:
    assert parse_id("12") == (0, 12) and parse_id("2/12") == (2, 12)
    with pytest.raises(DeadLetterError):
        parse_id("a/b")


def test_markers_say_at_most_once() -> None:
    def marker(offset: int, state: str, claim: str = "c1") -> Marker:
        return Marker(offset, state, claim, 1_000 + offset, "wc/3/9" if state == "sent" else None)

    assert redrive_status(None) is None
    assert redrive_status([marker(0, "claimed"), marker(1, "failed")]) is None  # may go again
    assert redrive_status([marker(0, "claimed")])["state"] == "claimed"  # type: ignore[index]
    sent = redrive_status([marker(0, "claimed"), marker(1, "claimed", "c2"), marker(2, "sent")])
    assert sent is not None and (sent["state"], sent["to"]) == ("sent", "wc/3/9")
    # The first claim since the last failure wins.
    attempt = _current_attempt(
        [marker(0, "claimed"), marker(1, "failed"), marker(2, "claimed", "c2")]
    )
    assert [m.claim for m in attempt] == ["c2"]


def test_an_edit_is_checked_against_the_topic_and_the_key() -> None:
    letter = _letter()
    fixed = {"waitId": "w", "runId": "r", "name": "fix.me", "correlationKey": "k", "timeout": "1h"}
    assert check_edit(letter, json.dumps(fixed).encode(), rekey=False) == letter.key
    with pytest.raises(DeadLetterError, match="not a wait command"):
        check_edit(letter, b'{"waitId": "w"}', rekey=False)
    other = {**fixed, "correlationKey": "other"}
    with pytest.raises(DeadLetterError, match="--rekey"):
        check_edit(letter, json.dumps(other).encode(), rekey=False)
    assert check_edit(letter, json.dumps(other).encode(), rekey=True) == make_key("fix.me", "other")


def test_wait_filter() -> None:
    wait = PendingWait(
        "w",
        "run-1",
        make_key("order.paid", "user-42"),
        1_000,
        61_000,
        "fail",
        None,
        None,
        None,
        None,
    )
    now = 31_000
    assert WaitFilter().empty and WaitFilter().matches(wait, now)
    assert WaitFilter(name="order.paid", key_prefix="user-", run_id="run-1").matches(wait, now)
    assert not WaitFilter(name="order.shipped").matches(wait, now)
    assert not WaitFilter(key_prefix="acct-").matches(wait, now)
    assert WaitFilter(older_than_ms=30_000).matches(wait, now)
    assert not WaitFilter(older_than_ms=30_001).matches(wait, now)
    assert not WaitFilter(newer_than_ms=29_999).matches(wait, now)


def test_instants() -> None:
    assert parse_instant("1796688578732") == 1796688578732
    assert parse_instant("2026-12-07T10:30:00Z") == 1796639400000
    assert parse_instant("2026-12-07T10:30:00") == 1796639400000  # no zone: UTC
    assert parse_instant("2026-12-07T11:30:00+01:00") == 1796639400000
    assert parse_instant("15m", now=1_000_000) == 100_000
    with pytest.raises(InstantError, match="not a time"):
        parse_instant("soon")
    assert format_ms(1796639400123) == "2026-12-07T10:30:00.123Z"
    assert [format_age(ms) for ms in (5_000, 125_000, 3_900_000, 90_000_000)] == [
        "5s",
        "2m",
        "1h05m",
        "1d01h",
    ]


def test_progress_bars_stay_off_a_stderr_that_is_no_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with bar("reading", 10) as progress:
        progress.advance(3)
        progress.update(completed=10, description="done")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
