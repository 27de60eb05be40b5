"""Records any producer or runner can write, meant to stop a partition or fire a timeout early:
the core refuses each with a reason, loses nothing, and its runner always hears back."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from coreharness import Core, dead_letters, resumes

from waitline.processors.correlation import (
    HEADER_ORIGIN,
    HEADER_REASON,
    HEADER_SOURCE,
    CoreSettings,
    Emit,
    InputRecord,
    Source,
    Target,
)
from waitline.processors.kv import MemoryKV
from waitline.processors.limits import (
    MAX_CONTEXT_BYTES,
    MAX_METADATA_BYTES,
    MAX_REASON_CHARS,
    output_bytes,
    producer_max_bytes,
)
from waitline.processors.state import PartitionState
from waitline.schemas.keys import make_key

S = 1000
H = 3600 * S
NOW = 1_800_000_000_000  # the worker's clock in these tests
KEY = make_key("a", "b")


def _reason(emit: Emit) -> str:
    value = dict(emit.headers)[HEADER_REASON]
    assert value is not None
    return value.decode()


def _registration(**fields: Any) -> dict[str, Any]:
    return {
        "waitId": "w1",
        "runId": "r1",
        "name": "a",
        "correlationKey": "b",
        "timeout": "1h",
        **fields,
    }


def _event(**fields: Any) -> dict[str, Any]:
    return {"eventId": "e1", "name": "a", "correlationKey": "b", **fields}


def _record(
    source: Source,
    value: bytes,
    ts: int = NOW,
    *,
    wall: int = NOW,
    broker_time: bool = False,
    key: bytes | None = KEY,
    headers: tuple[tuple[str, bytes | None], ...] = (),
    offset: int = 7,
) -> InputRecord:
    return InputRecord(source, key, value, ts, 3, offset, headers, wall, broker_time)


def _body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# -- size --------------------------------------------------------------------------------------


def test_a_registration_over_the_size_limit_is_rejected_by_reference(core: Core) -> None:
    limit = core.core.settings.max_record_bytes
    value = _body(_registration(context={"blob": "x" * limit}))
    out = core.core.process(
        core.state, _record(Source.WAIT_COMMANDS, value, headers=(("h", b"v"),))
    )
    (dead,) = dead_letters(out)
    assert dead.value is None and dead.key == KEY  # a reference: it would not fit as a copy
    headers = dict(dead.headers)
    assert "h" not in headers  # nor do its headers go along
    assert headers["waitline.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers[HEADER_SOURCE] == b"wait-commands/3/7"
    (rejected,) = resumes(out)
    assert (rejected["waitId"], rejected["outcome"]) == ("w1", "rejected")
    assert "exceeds the limit" in rejected["error"]


def test_headers_count_toward_the_size_limit(make_core: Any) -> None:
    core = make_core(CoreSettings(max_record_bytes=500))
    value = _body(_event())
    headers = (("pad", b"x" * 500),)
    (dead,) = core.core.process(core.state, _record(Source.EVENTS, value, headers=headers))
    assert dead.value is None and "exceeds the limit of 500" in _reason(dead)


def test_a_huge_key_is_not_carried_by_the_reference(make_core: Any) -> None:
    core = make_core(CoreSettings(max_record_bytes=10_000))
    (dead,) = core.core.process(core.state, _record(Source.EVENTS, b"{}", key=b"k" * 20_000))
    assert (dead.key, dead.value) == (None, None)


def test_metadata_and_context_over_their_caps_are_rejected(core: Core) -> None:
    for field, cap in (("metadata", MAX_METADATA_BYTES), ("context", MAX_CONTEXT_BYTES)):
        value = _body(_registration(waitId=f"w-{field}", **{field: {"x": "y" * cap}}))
        out = core.core.process(core.state, _record(Source.WAIT_COMMANDS, value))
        (rejected,) = resumes(out)
        assert rejected["outcome"] == "rejected" and field in rejected["error"]
        assert rejected["metadata"] is None  # the resume must fit the resumes topic
        assert core.state.get_wait(f"w-{field}") is None


def test_the_largest_resume_fits_the_output_limit(core: Core) -> None:
    """An event of the largest size matched by a wait with the largest metadata and ids."""
    limit = core.core.settings.max_record_bytes
    wait_id = "\x01" * 512  # each escaped as 6 bytes in JSON
    metadata = {"m": "\x01" * (MAX_METADATA_BYTES // 6 - 10)}
    assert len(json.dumps(metadata)) <= MAX_METADATA_BYTES
    reg = _body(_registration(waitId=wait_id, runId=wait_id, metadata=metadata))
    assert resumes(core.core.process(core.state, _record(Source.WAIT_COMMANDS, reg))) == []
    event = _event(data={})
    pad = limit - len(_body(event)) - len(KEY) - 20
    event["data"] = {"p": "x" * pad}
    value = _body(event)
    assert len(value) + len(KEY) <= limit
    (resume,) = [e for e in core.core.process(core.state, _record(Source.EVENTS, value))]
    assert resume.target is Target.RESUMES
    assert resume.value is not None and len(resume.value) <= output_bytes(limit)
    assert output_bytes(limit) < producer_max_bytes(limit)


def test_a_dead_letter_reason_is_cut(core: Core) -> None:
    (dead,) = core.core.process(
        core.state, _record(Source.EVENTS, _body(_event()), key=b"x" * 5000)
    )
    assert "mis-keyed" in _reason(dead) and len(_reason(dead)) <= MAX_REASON_CHARS


# -- time --------------------------------------------------------------------------------------


def _registered(core: Core, wait_id: str = "w1", at: int = NOW) -> None:
    value = _body(_registration(waitId=wait_id))
    assert core.core.process(core.state, _record(Source.WAIT_COMMANDS, value, at)) == []


def _timer(wait_id: str, deadline: int, name: str = "a", key: str = "b") -> bytes:
    return _body(
        {
            "type": "timer",
            "waitId": wait_id,
            "name": name,
            "correlationKey": key,
            "deadline": deadline,
        }
    )


def test_a_forged_timer_stamped_before_the_deadline_does_nothing(core: Core) -> None:
    _registered(core)
    deadline = NOW + H
    assert (
        core.core.process(core.state, _record(Source.WAIT_COMMANDS, _timer("w1", deadline))) == []
    )
    assert core.core.counters.timers_early == 1
    assert core.state.get_wait("w1") is not None
    # The wait's own timer is kept: it fires when the deadline passes.
    due = core.core.due_timers(core.state, deadline, 0, 10)
    assert [json.loads(e.value or b"")["waitId"] for e in due] == ["w1"]


def test_a_forged_timer_stamped_at_the_deadline_waits_for_the_workers_clock(core: Core) -> None:
    _registered(core)
    deadline = NOW + H
    # Stamped at the deadline a minute before it (within the allowed skew, so not refused).
    early = deadline - 60 * S
    forged = _record(Source.WAIT_COMMANDS, _timer("w1", deadline), deadline, wall=early)
    assert core.core.process(core.state, forged) == []
    assert core.state.get_wait("w1") is not None
    # Stamped by the broker (LogAppendTime), the record's time is the broker's own.
    late = _record(Source.WAIT_COMMANDS, _timer("w1", deadline), deadline, wall=0, broker_time=True)
    (resume,) = resumes(core.core.process(core.state, late))
    assert resume["outcome"] == "timed_out"


def test_a_timer_naming_another_pair_does_not_time_the_wait_out(core: Core) -> None:
    _registered(core)
    deadline = NOW + H
    other = make_key("c", "d")
    value = _timer("w1", deadline, "c", "d")
    late = deadline + S
    assert (
        core.core.process(
            core.state, _record(Source.WAIT_COMMANDS, value, late, wall=late, key=other)
        )
        == []
    )
    assert core.state.get_wait("w1") is not None


def test_a_cancel_naming_another_pair_does_not_cancel(core: Core) -> None:
    _registered(core)
    other = make_key("c", "d")
    cancel = _body({"type": "cancel", "waitId": "w1", "name": "c", "correlationKey": "d"})
    assert core.core.process(core.state, _record(Source.WAIT_COMMANDS, cancel, key=other)) == []
    assert core.state.get_wait("w1") is not None
    assert core.core.counters.cancels_unknown == 1


@pytest.mark.parametrize("source", [Source.EVENTS, Source.WAIT_COMMANDS])
def test_a_record_stamped_far_ahead_of_the_workers_clock_is_refused(source: Source) -> None:
    core = Core(PartitionState(MemoryKV()))
    year_3000 = 32_503_680_000_000
    value = _body(_registration() if source is Source.WAIT_COMMANDS else _event())
    out = core.core.process(core.state, _record(source, value, year_3000))
    assert "ahead of the worker's clock" in _reason(dead_letters(out)[0])
    assert list(core.state.iter_waits()) == [] and list(core.state.iter_buffered()) == []
    if source is Source.WAIT_COMMANDS:
        (rejected,) = resumes(out)  # the runner hears back, stamped with the worker's clock
        assert rejected["outcome"] == "rejected" and rejected["registeredAt"] == NOW


def test_a_record_within_the_allowed_skew_is_accepted(core: Core) -> None:
    skew = core.core.settings.max_clock_skew_ms
    _registered(core, at=NOW + skew)
    assert core.state.get_wait("w1") is not None


def test_the_broker_time_is_trusted(core: Core) -> None:
    year_3000 = 32_503_680_000_000
    value = _body(_registration())
    record = _record(Source.WAIT_COMMANDS, value, year_3000, broker_time=True)
    assert core.core.process(core.state, record) == []


def test_an_events_own_timestamp_far_ahead_of_its_record_is_only_data(core: Core) -> None:
    """Every window counts from the record's time, so a ``timestamp`` field in year 3000 keeps
    nothing longer and opens no window: the event is kept for its TTL from its record's time,
    and the resume carries the field as sent."""
    year_3000 = 32_503_680_000_000
    value = _body(_event(timestamp=year_3000, ttl="1h"))
    assert core.core.process(core.state, _record(Source.EVENTS, value)) == []
    ((_, kept),) = core.state.iter_buffered()
    assert (kept.record_time, kept.expires_at) == (NOW, NOW + H)
    registration = _body(_registration())
    (resume,) = resumes(core.core.process(core.state, _record(Source.WAIT_COMMANDS, registration)))
    assert resume["event"]["timestamp"] == year_3000


def test_an_events_timestamp_after_the_year_9999_is_refused(core: Core) -> None:
    value = _body(_event(timestamp=253_402_300_800_000))
    (dead,) = core.core.process(core.state, _record(Source.EVENTS, value))
    assert "invalid event: timestamp" in _reason(dead)
    assert list(core.state.iter_buffered()) == []


# -- content -----------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1E+999"])
def test_non_finite_numbers_are_refused(core: Core, number: str) -> None:
    event = _body(_event()).replace(b"}", b', "data": {"n": [' + number.encode() + b"]}}")
    (dead,) = core.core.process(core.state, _record(Source.EVENTS, event))
    assert "NaN or an infinite number" in _reason(dead)
    reg = _body(_registration()).replace(b"}", b', "metadata": ' + number.encode() + b"}")
    out = core.core.process(core.state, _record(Source.WAIT_COMMANDS, reg))
    assert resumes(out)[0]["outcome"] == "rejected"


def test_finite_numbers_that_look_alike_are_accepted(core: Core) -> None:
    data = {"n": 1e300, "s": "NaN Infinity e999", "big": 10**400}
    assert core.core.process(core.state, _record(Source.EVENTS, _body(_event(data=data)))) == []


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(
            b'{"waitId":"w1","runId":"r1","name":"a","correlationKey":"b","timeout":"1h",'
            b'"context":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
            id="nested-10k",
        ),
        pytest.param(
            b'{"waitId":"w1","runId":"r1","name":"a","correlationKey":"b","timeout":"1h",'
            b'"context":{"s":"\xff\xfe"}}',
            id="invalid-utf8",
        ),
        pytest.param(
            b'{"context":{"waitId":"inner","x":'
            + b"[" * 5000
            + b'"]"'
            + b"]" * 5000
            + b'},"waitId":"w1","runId":"r1","timeout":"\xff"}',
            id="ids-after-a-deep-member",
        ),
    ],
)
def test_a_registration_with_readable_ids_always_gets_a_resume(core: Core, value: bytes) -> None:
    out = core.core.process(core.state, _record(Source.WAIT_COMMANDS, value))
    assert dead_letters(out)[0].value == value
    (rejected,) = resumes(out)
    assert (rejected["waitId"], rejected["runId"], rejected["outcome"]) == ("w1", "r1", "rejected")


def test_a_bad_repeat_of_a_pending_wait_gets_no_second_outcome(core: Core) -> None:
    _registered(core)
    value = b'{"waitId":"w1","runId":"r1","context":' + b"[" * 10_000 + b"}"
    out = core.core.process(core.state, _record(Source.WAIT_COMMANDS, value))
    assert resumes(out) == [] and len(dead_letters(out)) == 1
    assert core.state.get_wait("w1") is not None


def test_dead_letter_headers_are_the_workers_and_values_round_trip(core: Core) -> None:
    headers = (
        (HEADER_REASON, b"forged"),
        (HEADER_SOURCE, b"forged"),
        ("empty", None),
        ("blank", b""),
    )
    record = _record(Source.EVENTS, b"garbage", NOW - H, headers=headers)
    (dead,) = core.core.process(core.state, record)
    assert [name for name, _ in dead.headers].count(HEADER_REASON) == 1
    assert [name for name, _ in dead.headers].count(HEADER_SOURCE) == 1
    named = dict(dead.headers)
    assert named[HEADER_SOURCE] == b"events/3/7" and "invalid event" in _reason(dead)
    assert named["empty"] is None and named["blank"] == b""
    assert dead.timestamp == NOW - H  # the original record time


def test_a_forwarded_copys_dead_letter_names_where_the_producer_wrote(core: Core) -> None:
    headers = ((HEADER_ORIGIN, b"events/5/99"),)
    (dead,) = core.core.process(core.state, _record(Source.EVENTS, b"garbage", headers=headers))
    named = dict(dead.headers)
    assert named[HEADER_ORIGIN] == b"events/5/99"  # as the forwarding worker wrote it
    assert named[HEADER_SOURCE] == b"events/3/7"  # where the worker read it


# -- `if` expressions --------------------------------------------------------------------------

DOUBLING = "[async.data.s]" + ".map(x, x + x)" * 40 + ".size() > 0"


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param(DOUBLING, id="doubling"),
        pytest.param("event.xs.exists(a, a in event.xs)", id="quadratic-over-context"),
        pytest.param(
            "async.data.l.all(a, async.data.l.exists(b, a == b)) // )", id="nested-with-comment"
        ),
    ],
)
def test_a_costly_if_is_rejected_at_registration(core: Core, expression: str) -> None:
    value = _body(_registration(context={"xs": list(range(5000))}, **{"if": expression}))
    out = core.core.process(core.state, _record(Source.WAIT_COMMANDS, value))
    (rejected,) = resumes(out)
    assert rejected["outcome"] == "rejected" and "too costly" in rejected["error"]
    assert core.state.get_wait("w1") is None


def test_a_comment_hides_nothing_and_the_context_read_is_bounded(core: Core) -> None:
    """A linear scan is within the cost bound, but not over 5,000 elements of context (over
    4 KiB); the `// )` comment does not change what is parsed."""
    expression = "event.xs.exists(a, a == 1) // )"
    value = _body(_registration(context={"xs": list(range(5000))}, **{"if": expression}))
    (rejected,) = resumes(core.core.process(core.state, _record(Source.WAIT_COMMANDS, value)))
    assert "context fields `if` reads" in rejected["error"]


def test_an_event_whose_fields_an_if_reads_are_too_large_is_no_match(core: Core) -> None:
    plain = _body(_registration(waitId="plain"))
    filtered = _body(_registration(**{"if": "async.data.tags.exists(t, t == 'vip')"}))
    for value in (filtered, plain):
        assert core.core.process(core.state, _record(Source.WAIT_COMMANDS, value)) == []
    event = _body(_event(data={"tags": ["x"] * 5000, "other": 1}))
    out = core.core.process(core.state, _record(Source.EVENTS, event))
    assert [r["waitId"] for r in resumes(out)] == ["plain"]  # the filtered wait is not judged
    assert core.core.filters.oversized == 1
    small = _body(_event(eventId="e2", data={"tags": ["vip"], "other": "y" * 50_000}))
    out = core.core.process(core.state, _record(Source.EVENTS, small))
    assert [r["waitId"] for r in resumes(out)] == ["w1"]  # only the fields it reads count


# -- found by review: growth, surrogates, slow scans -------------------------------------------


def test_an_event_that_grows_when_written_back_still_fits_its_resume(core: Core) -> None:
    """``1e15`` comes back as ``1000000000000000.0``: a 1 MiB event of them would make a resume
    of 4 MB. The resume then names the event instead of carrying it."""
    _registered(core)
    limit = core.core.settings.max_record_bytes
    numbers = ",".join(["1e15"] * ((limit - 200) // 5))
    value = b'{"eventId":"big","name":"a","correlationKey":"b","data":{"x":[' + numbers.encode()
    value += b"]}}"
    (resume,) = core.core.process(core.state, _record(Source.EVENTS, value))
    assert resume.value is not None and len(resume.value) <= output_bytes(limit)
    body = json.loads(resume.value)
    assert (body["outcome"], body["event"]) == ("matched", None)
    assert "'big' is too large to carry" in body["error"]
    assert core.core.counters.resumes_without_event == 1


def test_metadata_is_measured_as_written_back(core: Core) -> None:
    metadata = b"[" + b",".join([b"1e15"] * 13_000) + b"]"  # 65 KB in, 247 KB out
    value = _body(_registration()).replace(b"}", b',"metadata":' + metadata + b"}")
    out = core.core.process(core.state, _record(Source.WAIT_COMMANDS, value))
    (rejected,) = resumes(out)
    assert "metadata of" in rejected["error"] and rejected["metadata"] is None


def test_ids_that_are_not_unicode_are_not_salvaged(core: Core) -> None:
    value = b'{"waitId":"w","runId":"\\ud800","timeout":"soon"}'
    out = core.core.process(core.state, _record(Source.WAIT_COMMANDS, value))
    assert [e.target for e in out] == [Target.DEAD_LETTERS]


def test_an_unterminated_string_of_escapes_is_scanned_in_linear_time(core: Core) -> None:
    """Quadratic before: a 64 KiB body took 36 s, 1 MiB would take hours (pytest's timeout)."""
    value = b'{"waitId":"w1","runId":"r1","x":"' + b'\\"' * 500_000
    out = core.core.process(core.state, _record(Source.WAIT_COMMANDS, value))
    assert resumes(out)[0]["waitId"] == "w1"


def test_an_infinity_without_a_large_exponent_is_refused(core: Core) -> None:
    value = _body(_event()).replace(b"}", b',"data":{"x":2' + b"0" * 310 + b"e99}}")
    (dead,) = core.core.process(core.state, _record(Source.EVENTS, value))
    assert "NaN or an infinite number" in _reason(dead)


def test_a_too_large_registration_stamped_after_9999_gets_a_valid_resume(core: Core) -> None:
    limit = core.core.settings.max_record_bytes
    value = _body(_registration(context={"blob": "x" * limit}))
    out = core.core.process(core.state, _record(Source.WAIT_COMMANDS, value, 10**16, wall=0))
    (rejected,) = resumes(out)
    assert rejected["registeredAt"] <= 253_402_300_799_999


def test_the_if_evaluations_one_event_runs_are_bounded_by_their_worst_cost(
    make_core: Any,
) -> None:
    cheap = "async.data.n == 1"
    steps = Core(PartitionState(MemoryKV())).core.filters.worst_steps(cheap)
    core = make_core(CoreSettings(filter_steps_per_record=steps * 3))  # room for three
    for n in range(5):
        reg = _body(_registration(waitId=f"w{n}", **{"if": cheap}))
        assert core.core.process(core.state, _record(Source.WAIT_COMMANDS, reg)) == []
    event = _body(_event(data={"n": 1}))
    out = core.core.process(core.state, _record(Source.EVENTS, event))
    assert [r["waitId"] for r in resumes(out)] == ["w0", "w1", "w2"]
    assert core.core.counters.filters_not_run == 2
    again = _body(_event(eventId="e2", data={"n": 1}))  # the rest, with the next event
    out = core.core.process(core.state, _record(Source.EVENTS, again))
    assert [r["waitId"] for r in resumes(out)] == ["w3", "w4"]


def test_a_filtered_registration_scans_no_more_than_its_cost_allows(make_core: Any) -> None:
    never = "async.data.n == 2"
    steps = Core(PartitionState(MemoryKV())).core.filters.worst_steps(never)
    core = make_core(CoreSettings(filter_steps_per_record=steps * 3))
    for n in range(5):
        event = _body(_event(eventId=f"e{n}", data={"n": 2 if n == 4 else 1}))
        assert core.core.process(core.state, _record(Source.EVENTS, event, NOW + n)) == []
    reg = _body(_registration(**{"if": never}))
    assert core.core.process(core.state, _record(Source.WAIT_COMMANDS, reg, NOW + 10)) == []
    assert core.state.get_wait("w1") is not None  # the match, fifth, lies past three


def test_a_ttl_zero_event_matches_the_waits_pending_whatever_its_stamp(core: Core) -> None:
    """Before, one stamped before the waits registered passed over each of them: with 30,000
    such events and 20,000 waits on one pair, a worker applied nine records a second."""
    for n in range(3):
        _registered(core, f"w{n}", NOW + n)
    event = _body(_event(ttl="0", timestamp=NOW - H))
    out = core.core.process(core.state, _record(Source.EVENTS, event, NOW + 10))
    assert [r["waitId"] for r in resumes(out)] == ["w0", "w1", "w2"]
