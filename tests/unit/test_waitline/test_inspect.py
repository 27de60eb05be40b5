"""``waitline inspect`` reads a live worker's stores without writing a byte into them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from waitline import inspect
from waitline.cli import main
from waitline.processors.state import BufferedEvent, PendingWait
from waitline.processors.store import PartitionStore, open_snapshot

Files = dict[str, tuple[int, int]]


def _files(path: Path) -> Files:
    """Every file of a store: name -> (size, mtime in ns)."""
    return {f.name: (f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(path.iterdir())}


def _wait(wait_id: str, pair: bytes) -> PendingWait:
    return PendingWait(wait_id, f"run-{wait_id}", pair, 0, 10**12, "fail", None, None, None, 1)


@pytest.fixture
def live_store(tmp_path: Path) -> Iterator[PartitionStore]:
    """A store as a running worker holds it: committed state, open, locked."""
    store = PartitionStore(tmp_path / "g" / "partition-3", 3)
    store.open()
    store.state.add_wait(_wait("w1", b"email.verified|user-1"))
    store.state.add_wait(_wait("w2", b"email.verified|user-2"))
    body = b'{"eventId":"e1","name":"paid","correlationKey":"o-1","data":{}}'
    store.state.buffer_event(b"paid|o-1", BufferedEvent(5, 10**12, 1), body)
    store.commit({"events": 7, "wait-commands": 9})
    yield store
    store.close()


def test_inspect_leaves_a_live_store_untouched(
    live_store: PartitionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _files(live_store.path)
    time.sleep(0.05)  # past the file system's timestamp granularity: a rewrite would show
    assert [
        (s.partition, s.pending_waits, s.buffered_events) for s in inspect.summary(tmp_path, "g")
    ] == [(3, 2, 1)]
    assert [w["waitId"] for w in inspect.pending_waits(tmp_path, "g")] == ["w1", "w2"]
    assert [e["event"]["eventId"] for e in inspect.buffered_events(tmp_path, "g")] == ["e1"]
    for what in ("summary", "waits", "events"):
        assert main(["inspect", what, "--state-dir", str(tmp_path), "--group-id", "g"]) == 0
    out = capsys.readouterr().out
    assert "w2" in out and "e1" in out
    assert _files(live_store.path) == before
    # ... and the worker goes on writing it as before.
    live_store.state.add_wait(_wait("w3", b"n|k"))
    live_store.commit({"events": 8})
    assert [w["waitId"] for w in inspect.pending_waits(tmp_path, "g")] == ["w1", "w2", "w3"]


def test_a_snapshot_is_as_of_its_opening(live_store: PartitionStore) -> None:
    state, handle = open_snapshot(live_store.path)
    try:
        live_store.state.add_wait(_wait("later", b"n|k"))
        live_store.commit({"events": 8})
        assert [w.wait_id for w in state.iter_waits()] == ["w1", "w2"]
    finally:
        handle.close()


def test_inspect_limit(
    live_store: PartitionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["inspect", "waits", "--state-dir", str(tmp_path), "--group-id", "g", "--limit", "1"]
    assert main(args) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
