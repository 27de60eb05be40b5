"""A pair with many events or waits: the cost of a record does not grow with the pair's size.

Costs are counted, not timed: a ``KV`` wrapper counts the bytes written and the entries read
(point reads and scanned entries) while the core applies one record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from coreharness import Core, resumes

from waitline.processors.correlation import CoreSettings
from waitline.processors.filters import FilterCache
from waitline.processors.kv import MemoryKV
from waitline.processors.state import PartitionState
from waitline.schemas.keys import make_key

S = 1000


class CountingKV(MemoryKV):
    """A ``MemoryKV`` that counts what goes through it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0  # bytes of keys and values put, and of keys deleted
        self.read = 0  # entries read: point reads and entries a scan yielded

    def get(self, key: bytes) -> bytes | None:
        self.read += 1
        return super().get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.written += len(key) + len(value)
        super().put(key, value)

    def delete(self, key: bytes) -> None:
        self.written += len(key)
        super().delete(key)

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        for item in super().scan(start, stop):
            self.read += 1
            yield item

    def reset(self) -> tuple[int, int]:
        counts = (self.written, self.read)
        self.written = self.read = 0
        return counts


def _core(settings: CoreSettings | None = None) -> tuple[Core, CountingKV]:
    kv = CountingKV()
    return Core(PartitionState(kv), settings), kv


GROWN = 5_000


def test_buffering_an_event_costs_the_same_however_many_the_pair_holds() -> None:
    core, kv = _core()
    costs = []
    for i in range(GROWN):
        kv.reset()
        core.event("hot", "k", S + i, eventId=f"e{i:05}")
        costs.append(kv.reset())
    first, last = costs[1], costs[-1]
    assert last == first, (
        f"event 2 cost {first} (bytes written, entries read), event {GROWN} {last}"
    )


def test_registering_a_wait_costs_the_same_however_many_are_pending() -> None:
    core, kv = _core()
    core.event("hot", "k", S, eventId="old")  # buffered, outside every lookback-0 window
    costs = []
    for i in range(GROWN):
        kv.reset()
        assert core.register(f"w{i:05}", "hot", "k", 2 * S + i, lookback="0") == []
        costs.append(kv.reset())
    (first_written, first_read), (last_written, last_read) = costs[1], costs[-1]
    assert last_read == first_read
    assert last_written <= first_written + 8, costs  # its seq and deadline have more digits


def test_a_lookback_registration_seeks_past_the_older_events() -> None:
    core, kv = _core()
    for i in range(GROWN):
        core.event("hot", "k", S + i, eventId=f"e{i:05}")
    kv.reset()
    out = core.register("w", "hot", "k", S + GROWN, lookback="2ms")
    assert [r["event"]["eventId"] for r in resumes(out)] == [f"e{GROWN - 2:05}"]
    _, read = kv.reset()
    assert read < 20, f"{read} entries read to find an event two back"


def test_an_event_resolving_waits_costs_in_proportion_to_the_matches() -> None:
    core, kv = _core()
    for i in range(GROWN):
        core.register(f"w{i:05}", "hot", "k", S, lookback="0")
    kv.reset()
    out = core.event("hot", "k", 2 * S)
    written, _ = kv.reset()
    assert len(resumes(out)) == GROWN
    per_match = written / GROWN
    core.register("one", "hot", "k", 3 * S, lookback="0")
    kv.reset()
    assert len(resumes(core.event("hot", "k", 4 * S))) == 1
    alone, _ = kv.reset()
    assert per_match < alone, (per_match, alone)  # resolving one of many costs no more


def test_an_old_event_does_not_visit_waits_that_count_only_later_events() -> None:
    """Waits are kept by the start of their lookback window: an event older than every
    window (appended before those waits registered, lookback 0, and read after them) reads
    none of them."""
    core, kv = _core()
    for i in range(GROWN):
        core.register(f"w{i:05}", "hot", "k", 10 * S, lookback="0")
    kv.reset()
    assert core.event("hot", "k", S) == []
    _, read = kv.reset()
    assert read < 10, f"{read} entries read for an event no pending wait counts"


def test_removing_a_wait_costs_the_same_however_many_are_pending() -> None:
    def cancel_cost(pending: int) -> tuple[int, int]:
        core, kv = _core()
        for i in range(pending):
            core.register(f"w{i:05}", "hot", "k", S, lookback="0")
        kv.reset()
        assert len(resumes(core.cancel("w00000", "hot", "k", 2 * S))) == 1
        return kv.reset()

    assert cancel_cost(GROWN) == cancel_cost(2)


# -- the pair's cap ----------------------------------------------------------------------------


def test_past_the_cap_an_event_matches_but_is_not_buffered() -> None:
    core, _ = _core(CoreSettings(max_pair_events=3, event_ttl_ms=10 * S))
    for i in range(3):
        core.event("hot", "k", S + i, eventId=f"kept{i}")
    core.register("w", "hot", "k", 2 * S, lookback="0")
    out = core.event("hot", "k", 3 * S, eventId="over")  # the fourth: matches the pending wait
    assert [r["event"]["eventId"] for r in resumes(out)] == ["over"]
    assert [e.seq for e in core.state.events_of(b"hot|k")] == [1, 2, 3]  # not kept
    assert core.core.counters.events == 4 and core.core.counters.events_buffered == 3
    assert core.event("other", "k", 3 * S) == []  # other pairs have their own cap
    assert len(core.state.events_of(b"other|k")) == 1
    # A later registration takes the oldest event kept.
    (resume,) = resumes(core.register("w2", "hot", "k", 4 * S))
    assert resume["event"]["eventId"] == "kept0"
    # Once kept events expire, new ones are kept again.
    assert core.state.purge_expired(S + 10 * S, 100) == 1
    core.event("hot", "k", 5 * S, eventId="again")
    assert core.core.counters.events_buffered == 5
    assert len(core.state.events_of(b"hot|k")) == 3


def test_the_default_cap_keeps_a_hundred_thousand_events() -> None:
    settings = CoreSettings()
    assert settings.max_pair_events >= 100_000


# -- the registration's scan -------------------------------------------------------------------


class CountingFilters(FilterCache):
    def __init__(self) -> None:
        super().__init__()
        self.evaluated = 0

    def matches(self, source: str, candidate: dict[str, Any], context: Any) -> bool:
        self.evaluated += 1
        return super().matches(source, candidate, context)


def _filtered_core(scan: int) -> tuple[Core, CountingFilters]:
    core, _ = _core(CoreSettings(max_registration_scan=scan))
    filters = CountingFilters()
    core.core.filters = filters
    return core, filters


def test_a_registration_evaluates_at_most_max_registration_scan_events() -> None:
    core, filters = _filtered_core(10)
    for i in range(50):
        core.event("hot", "k", S + i, data={"i": i})
    assert core.register("w", "hot", "k", 2 * S, **{"if": "async.data.i == 30"}) == []
    assert filters.evaluated == 10  # the ten oldest; the wait stays pending
    assert core.state.waits_on(b"hot|k") == ["w"]
    (resume,) = resumes(core.event("hot", "k", 3 * S, data={"i": 30}))  # matches when it comes
    assert resume["waitId"] == "w"


def test_the_scan_bound_counts_from_the_lookback_windows_start() -> None:
    core, filters = _filtered_core(10)
    for i in range(50):
        core.event("hot", "k", S + i, data={"i": i})
    out = core.register("w", "hot", "k", S + 50, lookback="15ms", **{"if": "async.data.i == 44"})
    assert [r["event"]["data"]["i"] for r in resumes(out)] == [44]
    assert filters.evaluated == 10  # events 35..44, from the window's start


def test_within_the_bound_the_oldest_match_wins() -> None:
    core, filters = _filtered_core(10)
    for i in range(50):
        core.event("hot", "k", S + i, data={"i": i % 5})
    (resume,) = resumes(core.register("w", "hot", "k", 2 * S, **{"if": "async.data.i == 4"}))
    assert resume["event"]["eventId"] == "e5" and filters.evaluated == 5


def test_the_scan_stops_at_the_deadline() -> None:
    """Events oldest first (by record time): once one was appended at or after the wait's
    deadline, all later ones were too, and the scan stops there."""
    core, filters = _filtered_core(1_000)
    for i in range(50):
        core.event("hot", "k", 10 * S + i, data={"i": i})
    # Registered before the events were appended, with a deadline before them too.
    assert core.register("w", "hot", "k", S, timeout="1s", **{"if": "true"}) == []
    assert filters.evaluated == 0


# -- keys of pairs that are prefixes of each other ---------------------------------------------

PAIRS = [
    ("n", "k"),
    ("n", "k|x"),  # the separator inside the correlation key
    ("n", "k\0"),
    ("n", "k\0x"),
    ("n", "k\xff"),
    ("n", "kk"),
    ("n", "\0"),
    ("nk", "x"),
]


@pytest.mark.parametrize("order", ["waits first", "events first"])
def test_pairs_whose_keys_are_prefixes_of_each_other_stay_apart(order: str) -> None:
    core, _ = _core()
    registered = []
    for n, (name, key) in enumerate(PAIRS):
        if order == "waits first":
            assert core.register(f"w{n}", name, key, S, lookback="0") == []
            registered.append(f"w{n}")
        else:
            core.event(name, key, S, eventId=f"e{n}")
    for n, (name, key) in enumerate(PAIRS):
        pair = make_key(name, key)
        if order == "waits first":
            assert core.state.waits_on(pair) == [f"w{n}"]
            out = core.event(name, key, 2 * S, eventId=f"e{n}")
        else:
            assert [e.seq for e in core.state.events_of(pair)] == [n + 1]
            out = core.register(f"w{n}", name, key, 2 * S)
        assert [(r["waitId"], r["event"]["eventId"]) for r in resumes(out)] == [(f"w{n}", f"e{n}")]
