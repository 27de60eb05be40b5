"""The keyspaces of processors/state.py, against memory, overlay and RocksDB alike."""

from __future__ import annotations

from pathlib import Path

from processors.kv import MemoryKV, Overlay
from processors.state import BufferedEvent, PartitionState, PendingWait
from processors.store import PartitionStore, StoreState


def _wait(wait_id: str, pair: bytes = b"n|k", deadline: int = 1000) -> PendingWait:
    return PendingWait(
        wait_id, f"run-{wait_id}", pair, 0, deadline, "fail", None, None, None, {"m": 1}
    )


def test_waits_keep_registration_order(state: PartitionState) -> None:
    for wait_id in ("c", "a", "b"):
        state.add_wait(_wait(wait_id))
    assert state.waits_on(b"n|k") == ["c", "a", "b"]
    state.remove_wait(_wait("a"))
    assert state.waits_on(b"n|k") == ["c", "b"]
    assert state.get_wait("a") is None
    assert state.get_wait("c") == _wait("c")
    assert {w.wait_id for w in state.iter_waits()} == {"b", "c"}


def test_timers_are_deadline_ordered_across_byte_boundaries(state: PartitionState) -> None:
    for wait_id, deadline in (("x", 256), ("y", 255), ("z", 65_536), ("w", 1)):
        state.add_wait(_wait(wait_id, deadline=deadline))
    assert [t.wait_id for t in state.due_timers(65_536, 10)] == ["w", "y", "x", "z"]
    assert [t.wait_id for t in state.due_timers(255, 10)] == ["w", "y"]
    assert [t.wait_id for t in state.due_timers(10**6, 2)] == ["w", "y"]
    assert state.next_deadline() == 1
    state.remove_wait(_wait("w", deadline=1))
    assert state.next_deadline() == 255


def test_buffered_events_are_ordered_by_timestamp(state: PartitionState) -> None:
    state.buffer_event(b"n|k", BufferedEvent(20, 100, 2), b"two")
    state.buffer_event(b"n|k", BufferedEvent(10, 100, 1), b"one")
    state.buffer_event(b"n|k", BufferedEvent(10, 100, 1), b"one")  # same offset: no duplicate
    assert [e.seq for e in state.events_of(b"n|k")] == [1, 2]
    assert state.event_body(2) == b"two"
    state.drop_event(b"n|k", 1)
    assert [e.seq for e in state.events_of(b"n|k")] == [2]
    assert state.event_body(1) is None


def test_dedup_and_tombstones(state: PartitionState) -> None:
    assert state.dedup_expiry("n", "i") is None
    state.remember_dedup("n", "i", 500)
    assert state.dedup_expiry("n", "i") == 500
    state.mark_resolved("w", 700, b'{"resume": 1}')
    assert state.resolved("w") == (700, b'{"resume": 1}')


def test_purge_removes_only_what_expired(state: PartitionState) -> None:
    state.buffer_event(b"n|k", BufferedEvent(0, 100, 1), b"e1")
    state.buffer_event(b"n|k", BufferedEvent(0, 300, 2), b"e2")
    state.remember_dedup("n", "i", 100)
    state.mark_resolved("w", 100, b"r")
    assert state.purge_expired(99, 100) == 0
    assert state.purge_expired(100, 100) == 3
    assert [e.seq for e in state.events_of(b"n|k")] == [2]
    assert state.dedup_expiry("n", "i") is None
    assert state.resolved("w") is None
    assert state.purge_expired(300, 100) == 1
    assert state.events_of(b"n|k") == []


def test_purge_keeps_a_refreshed_dedup_entry(state: PartitionState) -> None:
    state.remember_dedup("n", "i", 100)
    state.remember_dedup("n", "i", 900)  # seen again after the first expiry was indexed
    state.purge_expired(100, 100)
    assert state.dedup_expiry("n", "i") == 900


def test_purge_respects_its_limit(state: PartitionState) -> None:
    for seq in range(5):
        state.buffer_event(b"n|k", BufferedEvent(0, 10, seq), b"e")
    assert state.purge_expired(10, 2) == 2
    assert len(state.events_of(b"n|k")) == 3


def test_overlay_reads_its_writes_and_merges_scans() -> None:
    base = MemoryKV()
    for key in (b"a", b"c", b"e"):
        base.put(key, key.upper())
    overlay = Overlay(base)
    overlay.put(b"b", b"new")
    overlay.put(b"c", b"changed")
    overlay.delete(b"e")
    assert overlay.get(b"c") == b"changed" and overlay.get(b"e") is None
    assert list(overlay.scan(b"a", b"z")) == [(b"a", b"A"), (b"b", b"new"), (b"c", b"changed")]
    assert base.get(b"b") is None  # nothing reaches the base until the owner writes it
    overlay.clear()
    assert overlay.get(b"e") == b"E"


def test_store_commits_state_and_offsets_atomically(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0", 0)
    store.open()
    store.state.add_wait(_wait("w1"))
    store.commit({"events": 10, "wait-commands": 4})
    store.state.add_wait(_wait("w2"))
    store.rollback()  # uncommitted work is gone
    store.close()
    assert store.status is StoreState.CLOSED

    reopened = PartitionStore(tmp_path / "p0", 0)
    reopened.open()
    assert reopened.offsets == {"events": 10, "wait-commands": 4}
    assert reopened.state.get_wait("w1") == _wait("w1")
    assert reopened.state.get_wait("w2") is None
    reopened.commit({"events": 11})
    assert reopened.offsets == {"events": 11, "wait-commands": 4}
    reopened.close()


def test_store_guards_its_lifecycle(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p1", 1)
    try:
        _ = store.state
    except RuntimeError as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("a closed store must not hand out its state")
    store.open()
    store.destroy()
    assert not (tmp_path / "p1").exists()
