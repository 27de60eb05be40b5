"""RocksDB state: one rocksdict store per partition, written in one atomic batch per commit.

This is the only module that imports RocksDB. ``PartitionStore`` owns a store and its
read-your-writes ``Overlay``; the core sees only ``PartitionStore.state``. ``commit`` writes a
batch's changes and the input offsets that produced them in the same ``WriteBatch``, so after
any crash the store holds either all of a batch's effects and its offsets, or neither. Between
``seal`` and ``commit`` a finished batch waits, readable, for its changelog acknowledgements
while the next one is applied on top of it.
"""

from __future__ import annotations

import enum
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
)

from waitline.processors.kv import Overlay
from waitline.processors.state import (
    DERIVED,
    LAYOUT,
    PartitionState,
    derived_entries,
    derived_removals,
    meta_key,
)

__all__ = [
    "OFFSETS",
    "OFFSETS_NAME",
    "PartitionStore",
    "RocksKV",
    "Snapshot",
    "StoreState",
    "older_layouts",
    "open_snapshot",
    "partition_stores",
]

# The input offsets; also the record that closes every changelog batch. Its name carries the
# state layout (processors.state), so state of another layout is told apart by its offsets
# key, in a store and in the changelog alike (compaction keeps the last record of every key).
OFFSETS_NAME = f"offsets@{LAYOUT.decode()}"
OFFSETS = meta_key(OFFSETS_NAME)
ANY_OFFSETS = meta_key("offsets")  # the prefix of every layout's offsets key (layout 1: bare)
CHANGELOG_POSITION = meta_key("changelog-position")  # local only: next changelog offset to read


class RocksKV:
    """A ``KV`` over an open rocksdict in raw (bytes) mode."""

    def __init__(self, db: Rdict) -> None:
        self.db = db

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.db.get(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self.db.put(key, value)

    def delete(self, key: bytes) -> None:
        self.db.delete(key)

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        # Bounds let RocksDB stop at ``stop`` instead of stepping over every deleted key (say,
        # the timers of resolved waits) until it finds a live one beyond the range. ``items``
        # steps in Rust: one call per entry (an iterator's valid, key, value, next: four).
        options = ReadOptions()
        options.set_iterate_lower_bound(start)
        options.set_iterate_upper_bound(stop)
        # A generator, so that ``options`` (which owns the bounds) lives as long as the
        # iteration: the iterator does not hold it, and read after it is freed, it stops early.
        yield from cast(
            Iterator[tuple[bytes, bytes]], self.db.items(from_key=start, read_opt=options)
        )


# Committed entries (and misses) a store's overlay keeps in memory per partition: a point read
# through rocksdict costs 0.5–2 µs, a dict lookup ~0.05 µs (see processors.kv.Overlay). Values
# above READ_CACHE_VALUE_BYTES are not kept (bodies, big contexts), so a partition's cache
# holds at most ~30 MiB however large the records.
READ_CACHE_ENTRIES = 50_000
READ_CACHE_VALUE_BYTES = 512

_BLOCK_CACHE: Cache | None = None


def store_options() -> Options:
    """RocksDB options for a partition store.

    Most lookups miss (is this waitId pending? resolved? any waits on this pair?), so every
    table has a bloom filter (10 bits per key) that answers a miss without reading a block, and
    so does the memtable (whole-key, 2% of the write buffer): a miss that searched the
    memtable's skiplist cost ~2 µs, with the filter ~0.5 µs. Memtables of 16 MiB instead of
    64: inserts into a smaller skiplist are cheaper and misses probe a few more files; in the
    worker's mix the two balance (docs/benchmarks.md), and eight stores hold ~200 MiB less.
    The stores of one process share a 128 MiB block cache.
    """
    global _BLOCK_CACHE
    if _BLOCK_CACHE is None:
        _BLOCK_CACHE = Cache(128 * 1024 * 1024)
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    table.set_block_cache(_BLOCK_CACHE)
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_block_based_table_factory(table)
    options.set_write_buffer_size(16 << 20)
    options.set_memtable_whole_key_filtering(True)
    options.set_memtable_prefix_bloom_ratio(0.02)
    return options


class StoreState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"


class PartitionStore:
    """The state of one partition number (its events and wait-commands partitions together)."""

    def __init__(self, path: Path, partition: int) -> None:
        self.path = path
        self.partition = partition
        self.status = StoreState.CLOSED
        self._db: Rdict | None = None
        self._overlay: Overlay | None = None
        self._state: PartitionState | None = None
        self.offsets: dict[str, int] = {}
        self.changelog_position = 0
        self._sealed_offsets: dict[str, int] | None = None

    def open(self) -> None:
        self._require(StoreState.CLOSED)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(self.path), store_options())
        self._overlay = Overlay(
            RocksKV(self._db),
            cache_limit=READ_CACHE_ENTRIES,
            cache_value_bytes=READ_CACHE_VALUE_BYTES,
        )
        self._state = PartitionState(self._overlay)
        self._load_positions()
        self.status = StoreState.OPEN

    def _load_positions(self) -> None:
        assert self._db is not None
        raw = self._db.get(OFFSETS)
        self.offsets = json.loads(raw) if raw is not None else {}
        position = self._db.get(CHANGELOG_POSITION)
        self.changelog_position = int(position) if position is not None else 0

    @property
    def state(self) -> PartitionState:
        self._require(StoreState.OPEN)
        assert self._state is not None
        return self._state

    @property
    def earliest_new_timer(self) -> int | None:
        """The state's hint for the run loop's timer scan (``PartitionState``): the earliest
        deadline of a timer written since the loop last set it back to None."""
        return self.state.earliest_new_timer

    @earliest_new_timer.setter
    def earliest_new_timer(self, deadline: int | None) -> None:
        self.state.earliest_new_timer = deadline

    @property
    def dirty(self) -> bool:
        """Changes not yet written to RocksDB, sealed or not."""
        return bool(self._overlay and (self._overlay.changes or self._overlay.sealed))

    @property
    def sealed_offsets(self) -> dict[str, int] | None:
        """The merged input offsets of the sealed batch; ``None`` when none is sealed."""
        return self._sealed_offsets

    def seal(self, offsets: dict[str, int]) -> None:
        """The batch in progress is finished at ``offsets`` (next offset per input): its changes
        stay readable under the next batch's until ``commit`` writes them. The run loop seals a
        batch, sends its changelog records and writes it once they are acknowledged."""
        self._require(StoreState.OPEN)
        assert self._overlay is not None
        if self._sealed_offsets is not None:
            raise RuntimeError(f"partition {self.partition}: the sealed batch is not committed")
        self._overlay.seal()
        self._sealed_offsets = {**self.offsets, **offsets}

    def changelog_records(self) -> list[tuple[bytes, bytes | None]]:
        """What the changelog must carry for the sealed batch: each changed key with its new
        value (``None``: deleted), except derived index entries (rebuilt on restore, see
        ``processors.state``), then the merged input offsets, which close the batch."""
        return [*self.changelog_changes(), self.closing_record()]

    def changelog_changes(self) -> Iterator[tuple[bytes, bytes | None]]:
        """``changelog_records`` without the closing record, as the run loop produces them."""
        self._require(StoreState.OPEN)
        assert self._overlay is not None
        return (item for item in self._overlay.sealed.items() if item[0][0] not in DERIVED)

    def closing_record(self) -> tuple[bytes, bytes]:
        """The record that closes the sealed batch in the changelog: its merged input offsets."""
        if self._sealed_offsets is None:
            raise RuntimeError(f"partition {self.partition}: no batch is sealed")
        return OFFSETS, json.dumps(self._sealed_offsets, sort_keys=True).encode()

    def commit(
        self, offsets: dict[str, int] | None = None, changelog_position: int | None = None
    ) -> None:
        """Write the sealed batch (with ``offsets``: seal the batch in progress at them first),
        its input offsets and the changelog position in one atomic batch."""
        self._require(StoreState.OPEN)
        assert self._db is not None and self._overlay is not None
        if offsets is not None:
            self.seal(offsets)
        merged = self._sealed_offsets
        if merged is None:
            raise RuntimeError(f"partition {self.partition}: no batch is sealed")
        self._sealed_offsets = None
        changes = self._overlay.sealed
        if not changes and merged == self.offsets and changelog_position is None:
            return
        # The metadata goes through the overlay too, so its read cache sees what is written.
        changes[OFFSETS] = json.dumps(merged, sort_keys=True).encode()
        if changelog_position is not None:
            changes[CHANGELOG_POSITION] = str(changelog_position).encode()
            self.changelog_position = changelog_position
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        for key, value in changes.items():
            if value is None:
                delete(key)
            else:
                put(key, value)
        self._db.write(batch)
        self._overlay.committed()
        self.offsets = merged

    def apply_restored(
        self, records: list[tuple[bytes, bytes | None]], changelog_position: int
    ) -> None:
        """Write records read back from the changelog (a whole batch) atomically."""
        self._require(StoreState.OPEN)
        assert self._db is not None and self._overlay is not None
        self._overlay.forget()  # the store changes underneath: cached reads may be stale
        self._sealed_offsets = None
        batch = WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
                for index_key in derived_removals(key):
                    batch.delete(index_key)
            else:
                batch.put(key, value)
                for index_key, index_value in derived_entries(key, value):
                    batch.put(index_key, index_value)
        batch.put(CHANGELOG_POSITION, str(changelog_position).encode())
        self._db.write(batch)
        self._load_positions()

    def rollback(self) -> None:
        """Forget buffered changes, sealed or not (their input will be read again)."""
        self._sealed_offsets = None
        if self._overlay is not None:
            self._overlay.clear()

    def close(self) -> None:
        if self.status is StoreState.CLOSED:
            return
        assert self._db is not None
        self.rollback()
        self._db.close()
        self._db = self._overlay = self._state = None
        self.status = StoreState.CLOSED

    def destroy(self) -> None:
        """Close and delete the store's files (for rebuilds)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def _require(self, status: StoreState) -> None:
        if self.status is not status:
            raise RuntimeError(
                f"store for partition {self.partition} is {self.status.value}, "
                f"expected {status.value}"
            )


class Snapshot:
    """The read-only handle of ``open_snapshot``: ``get`` a raw key, ``close`` when done."""

    def __init__(self, db: Rdict, scratch: Path) -> None:
        self.db = db
        self._scratch = scratch

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.db.get(key)
        return value

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self._scratch, ignore_errors=True)


_SNAPSHOT_ATTEMPTS = 5
_ROCKSDICT_CONFIG = "rocksdict-config.json"


def open_snapshot(path: Path) -> tuple[PartitionState, Snapshot]:
    """Open a store read-only, as of now, beside a worker that may be writing it, without
    writing anything into ``path``.

    Returns the state view and the handle to ``close()`` when done. rocksdict rewrites its
    ``rocksdict-config.json`` on every open, read-only and secondary alike, so the store is
    opened through a scratch directory: symbolic links to its files and a copy of that one.
    Every table file is opened with the store (``max_open_files`` -1), so a compaction that
    deletes one later does not matter; one that comes between listing the files and opening
    them fails the open, which is tried again.
    """
    if not (path / "CURRENT").exists():
        raise FileNotFoundError(f"no RocksDB store at {path}")
    source = path.resolve()
    attempt = 1
    while True:
        scratch = Path(tempfile.mkdtemp(prefix=f"waitline-snapshot-{path.name}-"))
        try:
            for entry in source.iterdir():
                if entry.name == "LOCK" or entry.name.startswith("LOG"):
                    continue  # the worker's lock and log: not read, not ours
                if entry.name == _ROCKSDICT_CONFIG:
                    shutil.copyfile(entry, scratch / entry.name)
                else:
                    (scratch / entry.name).symlink_to(entry)
            options = Options(raw_mode=True)
            options.set_max_open_files(-1)
            db = Rdict(str(scratch), options, access_type=AccessType.read_only())
        except Exception:
            shutil.rmtree(scratch, ignore_errors=True)
            if attempt == _SNAPSHOT_ATTEMPTS:
                raise
            attempt += 1
            continue
        return PartitionState(RocksKV(db)), Snapshot(db, scratch)


def partition_stores(root: Path) -> list[tuple[int, Path]]:
    """``(partition, path)`` of every store under ``root`` (a group's state), by partition."""
    found = []
    for path in root.glob("partition-*"):
        suffix = path.name.removeprefix("partition-")
        if suffix.isdigit() and (path / "CURRENT").exists():
            found.append((int(suffix), path))
    return sorted(found)


def older_layouts(root: Path) -> list[Path]:
    """The stores under ``root`` written in another state layout than this code's.

    Such a store cannot be read; the worker refuses to start on it (``waitline.worker``).
    """
    found = []
    for _, path in partition_stores(root):
        state, db = open_snapshot(path)
        try:
            if any(key != OFFSETS for key, _ in state.kv.scan(ANY_OFFSETS, ANY_OFFSETS + b"\xff")):
                found.append(path)
        finally:
            db.close()
    return found
