"""PartitionStore: RocksDB state and input offsets in one atomic write; rollback; lifecycle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from waitline.processors.state import BufferedEvent, PendingWait
from waitline.processors.store import (
    OFFSETS,
    OFFSETS_NAME,
    PartitionStore,
    StoreState,
    older_layouts,
    open_snapshot,
)


def _wait(wait_id: str, deadline: int = 1000) -> PendingWait:
    return PendingWait(wait_id, f"run-{wait_id}", b"n|k", 0, deadline, "fail", None, None, None, 1)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "p0"


@pytest.fixture
def store(path: Path) -> Iterator[PartitionStore]:
    store = PartitionStore(path, 0)
    store.open()
    yield store
    store.close()


def _reopen(store: PartitionStore) -> PartitionStore:
    store.close()
    again = PartitionStore(store.path, store.partition)
    again.open()
    return again


def test_nothing_reaches_disk_before_commit(store: PartitionStore) -> None:
    store.state.add_wait(_wait("w1"))
    assert store.dirty
    snapshot, db = open_snapshot(store.path)
    try:
        assert snapshot.get_wait("w1") is None  # buffered in the overlay only
        assert db.get(OFFSETS) is None
    finally:
        db.close()
    assert store.state.get_wait("w1") == _wait("w1")  # but the core reads its own writes


def test_commit_writes_state_and_offsets_together(store: PartitionStore) -> None:
    store.state.add_wait(_wait("w1"))
    store.state.buffer_event(b"n|k", BufferedEvent(5, 500, 3), b"body")
    store.commit({"events": 4, "wait-commands": 2})
    assert not store.dirty
    snapshot, db = open_snapshot(store.path)
    try:
        assert snapshot.get_wait("w1") == _wait("w1")
        assert snapshot.event_body(b"n|k", BufferedEvent(5, 500, 3)) == b"body"
        assert json.loads(db.get(OFFSETS) or b"") == {"events": 4, "wait-commands": 2}
    finally:
        db.close()


def test_commit_survives_close_and_reopen(store: PartitionStore) -> None:
    store.state.add_wait(_wait("w1", deadline=256))
    store.state.add_wait(_wait("w2", deadline=255))
    store.state.remember_dedup("n", "i", 900)
    store.commit({"events": 10, "wait-commands": 4})
    reopened = _reopen(store)
    try:
        assert reopened.offsets == {"events": 10, "wait-commands": 4}
        assert reopened.state.waits_on(b"n|k") == ["w1", "w2"]
        assert [t.wait_id for t in reopened.state.due_timers(10**6, 10)] == ["w2", "w1"]
        assert reopened.state.dedup_expiry("n", "i") == 900
    finally:
        reopened.close()


def test_rollback_discards_uncommitted_work(store: PartitionStore) -> None:
    store.state.add_wait(_wait("w1"))
    store.commit({"events": 1})
    store.state.add_wait(_wait("w2"))
    store.state.remove_wait(_wait("w1"))
    store.rollback()
    assert store.state.get_wait("w2") is None
    assert store.state.get_wait("w1") == _wait("w1")
    assert store.offsets == {"events": 1}


def test_close_discards_uncommitted_work(store: PartitionStore) -> None:
    store.state.add_wait(_wait("w1"))
    store.commit({"events": 1})
    store.state.add_wait(_wait("w2"))  # never committed: a crash here loses it, with its offset
    reopened = _reopen(store)
    try:
        assert reopened.state.get_wait("w2") is None
        assert reopened.offsets == {"events": 1}
    finally:
        reopened.close()


def test_a_sealed_batch_is_read_but_written_only_by_commit(store: PartitionStore) -> None:
    store.state.add_wait(_wait("w1"))
    store.seal({"wait-commands": 1})
    store.state.add_wait(_wait("w2"))  # the next batch, on top of the sealed one
    assert store.state.waits_on(b"n|k") == ["w1", "w2"]
    assert store.offsets == {} and store.sealed_offsets == {"wait-commands": 1}
    with pytest.raises(RuntimeError, match="sealed batch is not committed"):
        store.seal({"wait-commands": 2})
    store.commit()
    assert store.offsets == {"wait-commands": 1} and store.sealed_offsets is None
    reopened = _reopen(store)  # closing drops the next batch, never committed
    try:
        assert reopened.offsets == {"wait-commands": 1}
        assert reopened.state.get_wait("w1") == _wait("w1")
        assert reopened.state.get_wait("w2") is None
    finally:
        reopened.close()


def test_rollback_drops_the_sealed_batch_too(store: PartitionStore) -> None:
    store.commit({"events": 1})
    store.state.add_wait(_wait("w1"))
    store.seal({"events": 2})
    store.state.add_wait(_wait("w2"))
    store.rollback()
    assert store.offsets == {"events": 1} and store.sealed_offsets is None and not store.dirty
    assert store.state.get_wait("w1") is None and store.state.get_wait("w2") is None
    with pytest.raises(RuntimeError, match="no batch is sealed"):
        store.commit()


def test_offsets_merge_per_input(store: PartitionStore) -> None:
    store.commit({"events": 10, "wait-commands": 4})
    store.commit({"events": 11})
    assert store.offsets == {"events": 11, "wait-commands": 4}
    reopened = _reopen(store)
    try:
        assert reopened.offsets == {"events": 11, "wait-commands": 4}
    finally:
        reopened.close()


def test_deletes_are_committed_too(store: PartitionStore) -> None:
    store.state.add_wait(_wait("w1"))
    store.commit({"events": 1})
    store.state.remove_wait(_wait("w1"))
    store.commit({"events": 2})
    reopened = _reopen(store)
    try:
        assert reopened.state.get_wait("w1") is None
        assert reopened.state.waits_on(b"n|k") == []
        assert reopened.state.next_deadline() is None
    finally:
        reopened.close()


def test_changelog_records_are_the_changes_then_the_offsets(store: PartitionStore) -> None:
    store.commit({"events": 1})
    store.state.put_meta("x", b"1")
    store.seal({"wait-commands": 5})
    records = store.changelog_records()
    assert records[:-1] == [(b"mx", b"1")]
    assert records[-1] == (OFFSETS, b'{"events": 1, "wait-commands": 5}')


def test_apply_restored_writes_a_batch_and_its_position(store: PartitionStore) -> None:
    store.apply_restored([(b"mx", b"1"), (OFFSETS, b'{"events": 7}')], changelog_position=42)
    assert store.offsets == {"events": 7}
    assert store.changelog_position == 42
    assert store.state.get_meta("x") == b"1"
    reopened = _reopen(store)
    try:
        assert reopened.changelog_position == 42 and reopened.offsets == {"events": 7}
    finally:
        reopened.close()


def test_a_closed_store_hands_out_nothing(path: Path) -> None:
    store = PartitionStore(path, 3)
    assert store.status is StoreState.CLOSED
    assert not path.exists()  # no I/O in the constructor
    with pytest.raises(RuntimeError, match="partition 3 is closed"):
        _ = store.state
    with pytest.raises(RuntimeError, match="closed"):
        store.commit({"events": 1})


def test_open_twice_is_refused(store: PartitionStore) -> None:
    with pytest.raises(RuntimeError, match="is open, expected closed"):
        store.open()


def test_close_is_idempotent(path: Path) -> None:
    store = PartitionStore(path, 0)
    store.open()
    store.close()
    store.close()
    assert store.status is StoreState.CLOSED


def test_destroy_removes_the_files(path: Path) -> None:
    store = PartitionStore(path, 0)
    store.open()
    store.state.add_wait(_wait("w1"))
    store.commit({"events": 1})
    store.destroy()
    assert not path.exists()
    fresh = PartitionStore(path, 0)
    fresh.open()
    try:
        assert fresh.offsets == {} and fresh.state.get_wait("w1") is None
    finally:
        fresh.close()


def test_open_snapshot_needs_a_store(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no RocksDB store"):
        open_snapshot(tmp_path / "nothing")


def _every_entry(store: PartitionStore) -> dict[bytes, bytes]:
    return dict(store.state.kv.scan(b"", b"\xff"))


def test_the_changelog_leaves_out_indexes_and_a_restore_rebuilds_them(
    store: PartitionStore, tmp_path: Path
) -> None:
    """Timer (t), expiry (x), pending (p) and event (e) entries are derived: not logged,
    rebuilt on restore."""
    state = store.state
    state.add_wait(_wait("w1", deadline=5_000))
    state.buffer_event(b"n|k", BufferedEvent(10, 9_000, 3), b'{"eventId":"e"}')
    state.remember_dedup("n", "idem", 7_000)
    state.mark_resolved("w0", 8_000, b'{"resume":1}')
    store.seal({"events": 4})
    records = store.changelog_records()
    assert not [key for key, _ in records if key[:1] in (b"t", b"x", b"p", b"e")]
    store.commit()

    copy = PartitionStore(tmp_path / "copy", 0)
    copy.open()
    try:
        copy.apply_restored(records, changelog_position=len(records))
        assert _every_entry(copy) == {
            **_every_entry(store),
            b"mchangelog-position": str(len(records)).encode(),
        }
        assert [t.wait_id for t in copy.state.due_timers(5_000, 10)] == ["w1"]
        assert copy.state.purge_expired(10_000, 100) == 3  # event, dedup key, tombstone
    finally:
        copy.close()


def test_a_stale_timer_left_by_a_restore_fires_once_and_is_gone(
    store: PartitionStore, tmp_path: Path
) -> None:
    from waitline.processors.correlation import Correlator, InputRecord, Source

    store.state.add_wait(_wait("w1", deadline=5_000))
    store.seal({"wait-commands": 1})
    first = store.changelog_records()
    store.commit()
    store.state.remove_wait(_wait("w1", deadline=5_000))  # resolved in the next batch
    store.seal({"wait-commands": 2})
    second = store.changelog_records()

    copy = PartitionStore(tmp_path / "copy", 0)
    copy.open()
    try:
        copy.apply_restored([*first, *second], changelog_position=2)
        assert copy.state.get_wait("w1") is None
        core = Correlator()
        (timer,) = core.due_timers(copy.state, 5_000, 0, 10)  # the stale entry fires...
        record = InputRecord(Source.WAIT_COMMANDS, timer.key, timer.value, 5_000, 0, 2)
        assert core.process(copy.state, record) == []  # ...resolves nothing...
        assert core.due_timers(copy.state, 60_000, 0, 10) == []  # ...and is deleted
    finally:
        copy.close()


def test_the_store_notes_the_earliest_new_timer_for_the_run_loop(store: PartitionStore) -> None:
    """The loop scans for due timers from where its last scan ended, unless a timer written
    since lies before that: the store reports the earliest deadline written (the next scan
    reads the batch, sealed, before it is in RocksDB)."""
    assert store.earliest_new_timer is None
    store.state.add_wait(_wait("late", deadline=9_000))
    store.state.add_wait(_wait("early", deadline=4_000))
    store.seal({"wait-commands": 2})
    assert store.earliest_new_timer == 4_000
    store.commit()
    store.earliest_new_timer = None  # taken by the loop
    store.state.remove_wait(_wait("early", deadline=4_000))
    store.commit({"wait-commands": 3})
    assert store.earliest_new_timer is None  # deletes are no new timers
    assert [t.wait_id for t in store.state.due_timers(10_000, 10, since=5_000)] == ["late"]
    assert store.state.due_timers(10_000, 10, since=9_001) == []


def test_a_restore_replaces_what_the_read_cache_held(store: PartitionStore) -> None:
    assert store.state.get_wait("w1") is None  # a cached miss
    store.state.add_wait(_wait("w2"))
    store.commit({"wait-commands": 1})  # a cached committed value
    restored = [
        (b"w" + b"w1", _wait("w1").to_bytes()),
        (b"w" + b"w2", None),
        (OFFSETS, b'{"wait-commands": 9}'),
    ]
    store.apply_restored(restored, changelog_position=3)
    assert store.state.get_wait("w1") == _wait("w1")
    assert store.state.get_wait("w2") is None


def test_committed_metadata_is_read_back_through_the_cache(store: PartitionStore) -> None:
    assert store.state.get_meta(OFFSETS_NAME) is None  # a cached miss...
    store.commit({"events": 5}, changelog_position=7)
    assert json.loads(store.state.get_meta(OFFSETS_NAME) or b"") == {"events": 5}  # replaced
    assert store.state.get_meta("changelog-position") == b"7"


def test_stores_of_an_older_layout_are_found(tmp_path: Path) -> None:
    from rocksdict import Options, Rdict

    current = PartitionStore(tmp_path / "partition-0", 0)
    current.open()
    current.state.add_wait(_wait("w1"))
    current.commit({"events": 1})
    current.close()
    unused = Rdict(str(tmp_path / "partition-1"), Options(raw_mode=True))  # nothing processed
    unused.close()
    assert older_layouts(tmp_path) == []
    old = Rdict(str(tmp_path / "partition-2"), Options(raw_mode=True))
    old.put(b"moffsets", b'{"events": 1}')  # processed, in layout 1 (its offsets key)
    old.close()
    assert older_layouts(tmp_path) == [tmp_path / "partition-2"]


def test_a_restored_body_delete_takes_its_event_entry_along(
    store: PartitionStore, tmp_path: Path
) -> None:
    store.state.buffer_event(b"n|k", BufferedEvent(10, 9_000, 3), b"body")
    store.seal({"events": 4})
    first = store.changelog_records()
    store.commit()
    store.state.drop_event(b"n|k", BufferedEvent(10, 9_000, 3))
    store.seal({"events": 5})
    second = store.changelog_records()

    copy = PartitionStore(tmp_path / "copy", 0)
    copy.open()
    try:
        copy.apply_restored(first, changelog_position=len(first))
        assert copy.state.events_of(b"n|k") == [BufferedEvent(10, 9_000, 3)]
        copy.apply_restored(second, changelog_position=len(first) + len(second))
        assert list(copy.state.iter_buffered()) == []
        assert not [key for key in _every_entry(copy) if key[:1] in (b"e", b"b", b"n")]
    finally:
        copy.close()


def test_a_restored_store_rebuilds_each_pairs_order(store: PartitionStore, tmp_path: Path) -> None:
    for wait_id in ("c", "a", "b"):
        store.state.add_wait(_wait(wait_id))
    store.seal({"wait-commands": 3})
    records = store.changelog_records()
    store.commit()
    copy = PartitionStore(tmp_path / "copy", 0)
    copy.open()
    try:
        copy.apply_restored(records, changelog_position=len(records))
        assert copy.state.waits_on(b"n|k") == ["c", "a", "b"]
        copy.state.add_wait(_wait("d"))  # the pair's next seq came along
        assert copy.state.waits_on(b"n|k") == ["c", "a", "b", "d"]
    finally:
        copy.close()


def test_stores_of_layout_2_are_found(tmp_path: Path) -> None:
    from rocksdict import Options, Rdict

    old = Rdict(str(tmp_path / "partition-0"), Options(raw_mode=True))
    old.put(b"moffsets@2", b'{"events": 1}')  # layout 2: one list value per pair
    old.put(b"en|k", b"[[1,2,3]]")
    old.close()
    assert OFFSETS_NAME == "offsets@3"
    assert older_layouts(tmp_path) == [tmp_path / "partition-0"]
