"""The keyspaces of processors/state.py, against memory, overlay and RocksDB alike."""

from __future__ import annotations

from waitline.processors.state import BufferedEvent, PartitionState, PendingWait


def _wait(wait_id: str, pair: bytes = b"n|k", deadline: int = 1000, **kw: object) -> PendingWait:
    fields: dict[str, object] = {
        "run_id": f"run-{wait_id}",
        "registered_at": 0,
        "on_timeout": "fail",
        "lookback_ms": None,
        "filter": None,
        "context": None,
        "metadata": {"m": 1},
    }
    fields.update(kw)
    return PendingWait(wait_id=wait_id, pair=pair, deadline=deadline, **fields)  # type: ignore[arg-type]


# -- pending waits ---------------------------------------------------------------------------


def test_wait_round_trips_every_field(state: PartitionState) -> None:
    wait = _wait(
        "run-1/verify",
        pair=b"email.verified|user|42",
        deadline=9_000,
        registered_at=10,
        on_timeout="continue",
        lookback_ms=0,
        filter="async.data.ok",
        context={"data": {"u": "ü"}},
        metadata=[1, None, "x"],
    )
    state.add_wait(wait)
    assert state.get_wait("run-1/verify") == wait
    assert state.get_wait("run-1/other") is None


def test_waits_keep_registration_order(state: PartitionState) -> None:
    for wait_id in ("c", "a", "b"):
        state.add_wait(_wait(wait_id))
    assert state.waits_on(b"n|k") == ["c", "a", "b"]
    state.remove_wait(_wait("a"))
    assert state.waits_on(b"n|k") == ["c", "b"]
    state.add_wait(_wait("a"))  # registered again: now the last
    assert state.waits_on(b"n|k") == ["c", "b", "a"]
    assert state.get_wait("a") == _wait("a")


def test_waits_on_other_pairs_are_separate(state: PartitionState) -> None:
    state.add_wait(_wait("x", pair=b"n|k"))
    state.add_wait(_wait("y", pair=b"n|k2"))
    state.add_wait(_wait("z", pair=b"n2|k"))
    assert state.waits_on(b"n|k") == ["x"]
    assert state.waits_on(b"n|k2") == ["y"]
    assert state.waits_on(b"n|") == []


def test_removing_the_last_wait_empties_the_index(state: PartitionState) -> None:
    state.add_wait(_wait("a"))
    state.remove_wait(_wait("a"))
    assert state.waits_on(b"n|k") == []
    assert state.get_wait("a") is None
    assert list(state.iter_waits()) == []
    assert state.due_timers(10**9, 10) == []


def test_iter_waits(state: PartitionState) -> None:
    for wait_id in ("b", "a"):
        state.add_wait(_wait(wait_id))
    assert sorted(w.wait_id for w in state.iter_waits()) == ["a", "b"]


# -- timers ----------------------------------------------------------------------------------


def test_timers_are_deadline_ordered_across_byte_boundaries(state: PartitionState) -> None:
    deadlines = {"x": 256, "y": 255, "z": 65_536, "w": 1, "v": 2**32, "u": 65_535}
    for wait_id, deadline in deadlines.items():
        state.add_wait(_wait(wait_id, deadline=deadline))
    order = [t.wait_id for t in state.due_timers(2**40, 100)]
    assert order == ["w", "y", "x", "u", "z", "v"]
    assert [t.deadline for t in state.due_timers(2**40, 100)] == sorted(deadlines.values())


def test_due_timers_respect_now_and_limit(state: PartitionState) -> None:
    for wait_id, deadline in (("a", 255), ("b", 256), ("c", 257)):
        state.add_wait(_wait(wait_id, deadline=deadline))
    assert state.due_timers(254, 10) == []  # nothing before its deadline
    assert [t.wait_id for t in state.due_timers(255, 10)] == ["a"]  # due at the deadline
    assert [t.wait_id for t in state.due_timers(256, 10)] == ["a", "b"]
    assert [t.wait_id for t in state.due_timers(10**6, 2)] == ["a", "b"]
    (timer,) = state.due_timers(255, 10)
    assert (timer.deadline, timer.wait_id, timer.pair) == (255, "a", b"n|k")


def test_same_deadline_orders_by_wait_id(state: PartitionState) -> None:
    for wait_id in ("b", "c", "a"):
        state.add_wait(_wait(wait_id, deadline=500))
    assert [t.wait_id for t in state.due_timers(500, 10)] == ["a", "b", "c"]


def test_next_deadline(state: PartitionState) -> None:
    assert state.next_deadline() is None
    state.add_wait(_wait("late", deadline=256))
    state.add_wait(_wait("early", deadline=255))
    assert state.next_deadline() == 255
    state.remove_wait(_wait("early", deadline=255))
    assert state.next_deadline() == 256


# -- buffered events -------------------------------------------------------------------------


def test_buffered_events_are_ordered_by_timestamp(state: PartitionState) -> None:
    state.buffer_event(b"n|k", BufferedEvent(300, 1000, 1), b"third")
    state.buffer_event(b"n|k", BufferedEvent(100, 1000, 2), b"first")
    state.buffer_event(b"n|k", BufferedEvent(200, 1000, 3), b"second")
    state.buffer_event(b"n|k", BufferedEvent(100, 1000, 4), b"first-too")  # tie: by arrival
    assert [e.seq for e in state.events_of(b"n|k")] == [2, 4, 3, 1]
    assert state.event_body(b"n|k", BufferedEvent(200, 1000, 3)) == b"second"


def test_buffering_the_same_record_twice_keeps_one(state: PartitionState) -> None:
    state.buffer_event(b"n|k", BufferedEvent(10, 100, 7), b"one")
    state.buffer_event(b"n|k", BufferedEvent(10, 100, 7), b"one")  # a replay of offset 7
    assert state.events_of(b"n|k") == [BufferedEvent(10, 100, 7)]


def test_drop_event(state: PartitionState) -> None:
    state.buffer_event(b"n|k", BufferedEvent(10, 100, 1), b"one")
    state.buffer_event(b"n|k", BufferedEvent(20, 100, 2), b"two")
    state.drop_event(b"n|k", BufferedEvent(10, 100, 1))
    assert [e.seq for e in state.events_of(b"n|k")] == [2]
    assert state.event_body(b"n|k", BufferedEvent(10, 100, 1)) is None
    state.drop_event(b"n|k", BufferedEvent(20, 100, 2))
    state.drop_event(b"n|k", BufferedEvent(20, 100, 2))  # gone already: nothing to count out
    assert state.events_of(b"n|k") == []
    assert list(state.iter_buffered()) == []


def test_iter_buffered_walks_every_pair(state: PartitionState) -> None:
    state.buffer_event(b"b|k", BufferedEvent(10, 100, 1), b"x")
    state.buffer_event(b"a|k", BufferedEvent(20, 100, 2), b"y")
    assert [(pair, e.seq) for pair, e in state.iter_buffered()] == [(b"a|k", 2), (b"b|k", 1)]


# -- dedup and tombstones --------------------------------------------------------------------


def test_dedup_entries(state: PartitionState) -> None:
    assert state.dedup_expiry("n", "i") is None
    state.remember_dedup("n", "i", 500)
    assert state.dedup_expiry("n", "i") == 500
    assert state.dedup_expiry("other", "i") is None  # per name
    assert state.dedup_expiry("n", "j") is None


def test_tombstones(state: PartitionState) -> None:
    assert state.resolved("w") is None
    state.mark_resolved("w", 700, b'{"resume": 1}')
    assert state.resolved("w") == (700, b'{"resume": 1}')


def test_a_tombstone_takes_the_resolved_waits_key(state: PartitionState) -> None:
    wait = _wait("w")
    state.add_wait(wait)
    assert state.find_wait("w") == wait and state.resolved("w") is None
    state.remove_wait(wait)
    state.mark_resolved("w", 700, b"resume")
    assert state.find_wait("w") == (700, b"resume")
    assert state.get_wait("w") is None  # resolved is not pending
    assert list(state.iter_waits()) == []
    assert [key for key, _ in state.kv.scan(b"w", b"x")] == [b"ww"]  # one entry, no second
    assert state.find_wait("other") is None


def test_purge_leaves_a_wait_registered_again_after_its_tombstone(state: PartitionState) -> None:
    state.mark_resolved("w", 100, b"old")
    state.add_wait(_wait("w", deadline=5000))  # a new registration once the tombstone expired
    assert state.purge_expired(100, 100) == 1  # the tombstone's expiry entry, nothing else
    assert state.get_wait("w") == _wait("w", deadline=5000)


# -- purge -----------------------------------------------------------------------------------


def test_purge_removes_only_what_expired(state: PartitionState) -> None:
    state.buffer_event(b"n|k", BufferedEvent(0, 100, 1), b"e1")
    state.buffer_event(b"n|k", BufferedEvent(0, 300, 2), b"e2")
    state.remember_dedup("n", "i", 100)
    state.remember_dedup("n", "later", 300)
    state.mark_resolved("w", 100, b"r")
    state.mark_resolved("v", 300, b"r")
    state.add_wait(_wait("pending", deadline=50))  # waits are never purged: they time out
    assert state.purge_expired(99, 100) == 0
    assert state.purge_expired(100, 100) == 3
    assert [e.seq for e in state.events_of(b"n|k")] == [2]
    assert state.event_body(b"n|k", BufferedEvent(0, 100, 1)) is None
    assert state.event_body(b"n|k", BufferedEvent(0, 300, 2)) == b"e2"
    assert state.dedup_expiry("n", "i") is None and state.dedup_expiry("n", "later") == 300
    assert state.resolved("w") is None and state.resolved("v") == (300, b"r")
    assert state.get_wait("pending") is not None
    assert state.purge_expired(300, 100) == 3
    assert state.events_of(b"n|k") == []
    assert state.purge_expired(10**9, 100) == 0  # the purge index is empty too


def test_purge_keeps_a_refreshed_dedup_entry(state: PartitionState) -> None:
    state.remember_dedup("n", "i", 100)
    state.remember_dedup("n", "i", 900)  # seen again after the first expiry was indexed
    state.purge_expired(100, 100)
    assert state.dedup_expiry("n", "i") == 900
    state.purge_expired(900, 100)
    assert state.dedup_expiry("n", "i") is None


def test_purge_keeps_a_refreshed_tombstone(state: PartitionState) -> None:
    state.mark_resolved("w", 100, b"old")
    state.mark_resolved("w", 900, b"new")  # the waitId was registered and resolved again
    state.purge_expired(100, 100)
    assert state.resolved("w") == (900, b"new")


def test_purge_respects_its_limit(state: PartitionState) -> None:
    for seq in range(5):
        state.buffer_event(b"n|k", BufferedEvent(0, 10, seq), b"e")
    assert state.purge_expired(10, 2) == 2
    assert len(state.events_of(b"n|k")) == 3
    assert state.purge_expired(10, 10) == 3
    assert state.events_of(b"n|k") == []


def test_purge_walks_expiries_oldest_first(state: PartitionState) -> None:
    state.buffer_event(b"n|k", BufferedEvent(0, 256, 1), b"later")
    state.buffer_event(b"n|k", BufferedEvent(0, 255, 2), b"sooner")
    assert state.purge_expired(1000, 1) == 1
    assert [e.seq for e in state.events_of(b"n|k")] == [1]


# -- metadata --------------------------------------------------------------------------------


def test_metadata(state: PartitionState) -> None:
    assert state.get_meta("offsets") is None
    state.put_meta("offsets", b'{"events": 3}')
    assert state.get_meta("offsets") == b'{"events": 3}'


# -- pairs: one key per wait and per event, prefix-free ----------------------------------------

# Pairs whose bytes are prefixes of each other's: the separator, NUL, U+FFFF inside keys.
_PAIRS = [
    b"n|k",
    b"n|k|x",
    b"n|k\0",
    b"n|k\0x",
    "n|k\uffff".encode(),
    b"n|kk",
    b"n|",
    b"nk|x",
    b"n|k\0\0",
]


def test_pairs_whose_bytes_are_prefixes_of_each_other_stay_apart(state: PartitionState) -> None:
    for n, pair in enumerate(_PAIRS):
        state.add_wait(_wait(f"w{n}", pair=pair))
        state.buffer_event(pair, BufferedEvent(10 + n, 1000, n), b"body%d" % n)
    for n, pair in enumerate(_PAIRS):
        assert state.waits_on(pair) == [f"w{n}"]
        assert [w.wait_id for w in state.pending_on(pair)] == [f"w{n}"]
        assert state.events_of(pair) == [BufferedEvent(10 + n, 1000, n)]
        assert state.event_body(pair, BufferedEvent(10 + n, 1000, n)) == b"body%d" % n
    assert sorted(pair for pair, _ in state.iter_buffered()) == sorted(_PAIRS)
    for n, pair in enumerate(_PAIRS):  # emptying one pair leaves the others
        state.remove_wait(_wait(f"w{n}", pair=pair, seq=0))
        state.drop_event(pair, BufferedEvent(10 + n, 1000, n))
        assert state.waits_on(pair) == [] and state.events_of(pair) == []
        for other in _PAIRS[n + 1 :]:
            assert len(state.waits_on(other)) == 1 and len(state.events_of(other)) == 1


def test_waits_take_their_pairs_next_seq(state: PartitionState) -> None:
    for wait_id in ("c", "a", "b"):
        state.add_wait(_wait(wait_id))
    state.add_wait(_wait("x", pair=b"n|other"))
    assert [w.seq for w in state.pending_on(b"n|k")] == [0, 1, 2]
    assert [w.seq for w in state.pending_on(b"n|other")] == [0]
    assert state.get_wait("b") is not None and state.get_wait("b").seq == 2  # type: ignore[union-attr]


def test_events_since_seeks_to_the_timestamp_and_stops_at_the_limit(
    state: PartitionState,
) -> None:
    for seq, ts in enumerate((300, 100, 200, 100, 256, 255)):
        state.buffer_event(b"n|k", BufferedEvent(ts, 9_000, seq), b"e")
    assert [e.record_time for e in state.events_since(b"n|k", 0, None)] == [
        100, 100, 200, 255, 256, 300,
    ]  # fmt: skip
    assert [e.record_time for e in state.events_since(b"n|k", 200, None)] == [200, 255, 256, 300]
    assert [e.record_time for e in state.events_since(b"n|k", 201, 2)] == [255, 256]
    assert list(state.events_since(b"n|k", 301, None)) == []
    assert list(state.events_since(b"n|none", 0, None)) == []


def test_buffer_event_refuses_past_the_limit(state: PartitionState) -> None:
    assert state.buffer_event(b"n|k", BufferedEvent(1, 100, 1), b"a", limit=2)
    assert state.buffer_event(b"n|k", BufferedEvent(2, 100, 2), b"b", limit=2)
    assert not state.buffer_event(b"n|k", BufferedEvent(3, 100, 3), b"c", limit=2)
    assert not state.buffer_event(b"n|k", BufferedEvent(2, 100, 2), b"b", limit=2)  # kept once
    assert [e.seq for e in state.events_of(b"n|k")] == [1, 2]
    assert state.event_body(b"n|k", BufferedEvent(3, 100, 3)) is None
    state.drop_event(b"n|k", BufferedEvent(1, 100, 1))
    assert state.buffer_event(b"n|k", BufferedEvent(4, 100, 4), b"d", limit=2)


def test_a_stale_pending_entry_is_skipped_and_deleted(state: PartitionState) -> None:
    """A restore may leave a ``p`` entry whose wait resolved (see the module docstring)."""
    state.add_wait(_wait("w"))
    state.remove_wait(_wait("w", seq=0))
    prefix, window_start = b"p\x00\x03n|k", b"\0" * 8
    state.kv.put(prefix + window_start + b"\0" * 8 + b"w", b"")  # as a restore could leave it
    state.kv.put(prefix + window_start + b"\0" * 7 + b"\1" + b"v", b"")  # another pair's wait
    state.add_wait(_wait("v", pair=b"n|other"))
    state.add_wait(_wait("u"))  # the pair's counts: one wait pending, seq 0 again
    assert [w.wait_id for w in state.pending_on(b"n|k")] == ["u"]
    assert [key for key, _ in state.kv.scan(prefix, prefix + b"\xff")] == [
        prefix + window_start + b"\0" * 8 + b"u"
    ]


def test_an_events_scan_skips_waits_whose_window_starts_after_it(state: PartitionState) -> None:
    state.add_wait(_wait("late", registered_at=500, lookback_ms=0))  # counts events from 500
    state.add_wait(_wait("any"))  # no lookback: any event
    state.add_wait(_wait("ten", registered_at=500, lookback_ms=10))  # from 490
    assert [w.wait_id for w in state.pending_on(b"n|k", 100)] == ["any"]
    assert [w.wait_id for w in state.pending_on(b"n|k", 490)] == ["any", "ten"]
    assert [w.wait_id for w in state.pending_on(b"n|k", 500)] == ["late", "any", "ten"]
    assert [w.wait_id for w in state.pending_on(b"n|k")] == ["late", "any", "ten"]
