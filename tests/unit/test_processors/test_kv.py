"""The KV contract (ordered byte map with range scans), and the Overlay write buffer."""

from __future__ import annotations

import random

import pytest

from waitline.processors.kv import KV, MemoryKV, Overlay


def _user_keys(kv: KV) -> list[tuple[bytes, bytes]]:
    return list(kv.scan(b"a", b"\xff"))


def test_get_put_delete(kv: KV) -> None:
    assert kv.get(b"k") is None
    kv.put(b"k", b"v1")
    assert kv.get(b"k") == b"v1"
    kv.put(b"k", b"v2")
    assert kv.get(b"k") == b"v2"
    kv.delete(b"k")
    assert kv.get(b"k") is None
    kv.delete(b"never-there")  # deleting a missing key is not an error


def test_scan_is_ordered_and_half_open(kv: KV) -> None:
    for key in (b"b", b"d", b"a", b"c", b"e"):
        kv.put(key, key.upper())
    assert list(kv.scan(b"b", b"d")) == [(b"b", b"B"), (b"c", b"C")]  # stop is exclusive
    assert [k for k, _ in kv.scan(b"a", b"\xff")] == [b"a", b"b", b"c", b"d", b"e"]
    assert list(kv.scan(b"x", b"z")) == []


def test_scan_orders_bytes_unsigned(kv: KV) -> None:
    for key in (b"t\x01\x00", b"t\x00\xff", b"t\xff", b"t\x80"):
        kv.put(key, b"")
    assert [k for k, _ in kv.scan(b"t", b"u")] == [b"t\x00\xff", b"t\x01\x00", b"t\x80", b"t\xff"]


def test_scan_by_prefix_stops_at_the_next_prefix(kv: KV) -> None:
    kv.put(b"w1", b"")
    kv.put(b"w\xff\xff", b"")
    kv.put(b"x0", b"")
    assert [k for k, _ in kv.scan(b"w", b"x")] == [b"w1", b"w\xff\xff"]


def test_deleted_keys_leave_scans(kv: KV) -> None:
    for key in (b"a", b"b", b"c"):
        kv.put(key, b"1")
    kv.delete(b"b")
    assert _user_keys(kv) == [(b"a", b"1"), (b"c", b"1")]


def test_memory_kv_len() -> None:
    kv = MemoryKV()
    kv.put(b"a", b"1")
    kv.put(b"a", b"2")
    kv.put(b"b", b"1")
    kv.delete(b"a")
    assert len(kv) == 1


def _base() -> MemoryKV:
    base = MemoryKV()
    for key in (b"a", b"c", b"e", b"g"):
        base.put(key, key.upper())
    return base


def test_overlay_reads_its_own_writes() -> None:
    base = _base()
    overlay = Overlay(base)
    overlay.put(b"c", b"changed")
    overlay.put(b"new", b"N")
    overlay.delete(b"e")
    assert overlay.get(b"c") == b"changed"
    assert overlay.get(b"new") == b"N"
    assert overlay.get(b"e") is None
    assert overlay.get(b"a") == b"A"  # untouched keys come from the base


def test_overlay_leaves_the_base_alone() -> None:
    base = _base()
    overlay = Overlay(base)
    overlay.put(b"b", b"new")
    overlay.delete(b"a")
    assert base.get(b"b") is None and base.get(b"a") == b"A"
    assert overlay.changes == {b"b": b"new", b"a": None}


def test_overlay_scan_merges_in_key_order() -> None:
    overlay = Overlay(_base())
    overlay.put(b"b", b"new")  # between base keys
    overlay.put(b"c", b"changed")  # shadows a base key
    overlay.delete(b"e")  # hides a base key
    overlay.put(b"z", b"last")  # after every base key
    overlay.delete(b"nope")  # deleting what never existed
    assert list(overlay.scan(b"a", b"\xff")) == [
        (b"a", b"A"),
        (b"b", b"new"),
        (b"c", b"changed"),
        (b"g", b"G"),
        (b"z", b"last"),
    ]
    assert list(overlay.scan(b"b", b"g")) == [(b"b", b"new"), (b"c", b"changed")]


def test_overlay_delete_then_put_again() -> None:
    overlay = Overlay(_base())
    overlay.delete(b"a")
    overlay.put(b"a", b"back")
    assert overlay.get(b"a") == b"back"
    assert list(overlay.scan(b"a", b"b")) == [(b"a", b"back")]


def test_overlay_clear_discards_buffered_writes() -> None:
    overlay = Overlay(_base())
    overlay.put(b"c", b"changed")
    overlay.delete(b"e")
    overlay.clear()
    assert overlay.get(b"c") == b"C" and overlay.get(b"e") == b"E"
    assert overlay.changes == {}


def test_overlay_reads_a_sealed_batch_under_the_next_one() -> None:
    overlay = Overlay(_base())
    overlay.put(b"c", b"sealed")
    overlay.delete(b"e")
    overlay.put(b"b", b"sealed")
    overlay.seal()
    assert overlay.changes == {} and overlay.sealed == {
        b"c": b"sealed",
        b"e": None,
        b"b": b"sealed",
    }
    overlay.put(b"b", b"next")  # the next batch shadows the sealed one
    overlay.put(b"e", b"back")
    assert [overlay.get(k) for k in (b"a", b"b", b"c", b"e")] == [b"A", b"next", b"sealed", b"back"]
    merged = [key + b"=" + value for key, value in overlay.scan(b"a", b"\xff")]
    assert merged == [b"a=A", b"b=next", b"c=sealed", b"e=back", b"g=G"]
    overlay.delete(b"c")  # deleted by the next batch, still sealed in the one before
    assert overlay.get(b"c") is None and [k for k, _ in overlay.scan(b"c", b"d")] == []


def test_overlay_seals_one_batch_at_a_time() -> None:
    overlay = Overlay(_base())
    overlay.put(b"a", b"1")
    overlay.seal()
    overlay.put(b"a", b"2")
    with pytest.raises(RuntimeError, match="not committed"):
        overlay.seal()
    assert overlay.sealed == {b"a": b"1"} and overlay.changes == {b"a": b"2"}


def test_overlay_clear_drops_the_sealed_batch_too() -> None:
    overlay = Overlay(_base())
    overlay.put(b"a", b"sealed")
    overlay.seal()
    overlay.put(b"c", b"next")
    overlay.clear()
    assert overlay.get(b"a") == b"A" and overlay.get(b"c") == b"C"
    assert overlay.changes == {} and overlay.sealed == {}


def test_overlay_commits_the_sealed_batch_not_the_next() -> None:
    base = _CountingKV()
    overlay = Overlay(base, cache_limit=10)
    overlay.put(b"a", b"sealed")
    overlay.seal()
    overlay.put(b"b", b"next")
    base.put(b"a", b"sealed")
    overlay.committed()
    assert overlay.sealed == {} and overlay.changes == {b"b": b"next"}
    assert overlay.cache == {b"a": b"sealed"}  # the written batch is cached, the next is not


class _CountingKV(MemoryKV):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return super().get(key)


def test_overlay_cache_serves_repeated_reads_and_misses_from_memory() -> None:
    base = _CountingKV()
    base.put(b"a", b"A")
    overlay = Overlay(base, cache_limit=10)
    assert [overlay.get(b"a"), overlay.get(b"a"), overlay.get(b"nope"), overlay.get(b"nope")] == [
        b"A",
        b"A",
        None,
        None,
    ]
    assert base.reads == 2


def test_overlay_cache_takes_committed_changes_and_rollback_keeps_them() -> None:
    base = _CountingKV()
    overlay = Overlay(base, cache_limit=10)
    overlay.put(b"a", b"new")
    overlay.delete(b"b")
    overlay.seal()
    base.put(b"a", b"new")  # the owner writes the batch to the base...
    overlay.committed()  # ...and says so
    assert overlay.changes == {} and overlay.sealed == {}
    overlay.put(b"a", b"uncommitted")
    overlay.clear()  # a rollback forgets the batch, not what was committed
    assert overlay.get(b"a") == b"new" and overlay.get(b"b") is None
    assert base.reads == 0


def test_overlay_forget_drops_cached_reads() -> None:
    base = MemoryKV()
    base.put(b"a", b"old")
    overlay = Overlay(base, cache_limit=10)
    assert overlay.get(b"a") == b"old"
    base.put(b"a", b"restored")  # changed underneath, as a restore does
    overlay.forget()
    assert overlay.get(b"a") == b"restored"


def test_overlay_cache_stays_within_its_limit() -> None:
    overlay = Overlay(MemoryKV(), cache_limit=3)
    for i in range(10):
        overlay.get(bytes([i]))
        overlay.put(bytes([100 + i]), b"v")
        overlay.seal()
        overlay.committed()
        assert len(overlay.cache) <= 3
    assert overlay.get(bytes([100 + 9])) == b"v"  # the latest commit is never the one evicted


def test_overlay_cache_leaves_out_large_values() -> None:
    base = _CountingKV()
    overlay = Overlay(base, cache_limit=10, cache_value_bytes=4)
    overlay.put(b"a", b"tiny")
    overlay.seal()
    base.put(b"a", b"tiny")
    overlay.committed()
    assert overlay.get(b"a") == b"tiny" and base.reads == 0
    overlay.put(b"a", b"much larger")  # replaces the cached small value...
    overlay.seal()
    base.put(b"a", b"much larger")
    overlay.committed()
    assert overlay.get(b"a") == b"much larger"  # ...which must not be served any more
    assert overlay.get(b"a") == b"much larger"
    assert base.reads == 2 and b"a" not in overlay.cache


def _grouped_key(rng: random.Random) -> bytes:
    """A key of the state's ``e`` keyspace: tag, pair length, pair, then 2 bytes."""
    pair = rng.choice([b"a", b"a\0", b"ab", b"b", b""])
    return b"e" + len(pair).to_bytes(2, "big") + pair + bytes([rng.randrange(4), rng.randrange(4)])


def test_a_grouped_overlay_scans_like_the_whole_map() -> None:
    """Scans inside one group (``group_scans``) read the group's sorted keys; whatever the
    writes, seals and commits, they see what a plain ordered map holds."""
    rng = random.Random(11)
    base = MemoryKV()
    overlay = Overlay(base)
    overlay.group_scans(b"e")
    expected: dict[bytes, bytes] = {}
    for step in range(3_000):
        key = _grouped_key(rng)
        if rng.random() < 0.3:
            overlay.delete(key)
            expected.pop(key, None)
        else:
            value = b"%d" % step
            overlay.put(key, value)
            expected[key] = value
        if step % 97 == 0 and not overlay.sealed:
            overlay.seal()
        elif step % 89 == 0 and overlay.sealed:
            for k, v in overlay.sealed.items():
                base.delete(k) if v is None else base.put(k, v)
            overlay.committed()
        key = _grouped_key(rng)
        group = key[: 3 + key[2]]
        start = group + bytes(rng.choice([[], [1], [2, 1]]))
        stop = group + rng.choice([b"\xff", b"\x02", b"\x03\x00"])
        want = sorted((k, v) for k, v in expected.items() if start <= k < stop)
        assert list(overlay.scan(start, stop)) == want, (step, start, stop)
    assert list(overlay.scan(b"e", b"f")) == sorted(expected.items())  # across groups


def test_a_scan_within_a_group_does_not_walk_every_buffered_write() -> None:
    overlay = Overlay(MemoryKV())
    overlay.group_scans(b"e")
    overlay.put(b"e\x00\x01a\x01", b"1")
    overlay.put(b"m", b"unrelated")

    def walk_all(start: bytes, stop: bytes) -> None:
        raise AssertionError("walked every buffered write")

    overlay._scan_all = walk_all  # type: ignore[method-assign,assignment]
    assert list(overlay.scan(b"e\x00\x01a", b"e\x00\x01a\xff")) == [(b"e\x00\x01a\x01", b"1")]


def test_group_scans_indexes_what_is_buffered_already() -> None:
    overlay = Overlay(MemoryKV())
    overlay.put(b"e\x00\x01a\x02", b"sealed")
    overlay.seal()
    overlay.put(b"e\x00\x01a\x01", b"changed")
    overlay.group_scans(b"e")
    assert list(overlay.scan(b"e\x00\x01a", b"e\x00\x01a\xff")) == [
        (b"e\x00\x01a\x01", b"changed"),
        (b"e\x00\x01a\x02", b"sealed"),
    ]
