"""Unit fixtures: the KV layers, the state over each of them, and a core to drive.

No broker and no network: everything here runs in-process (RocksDB under ``tmp_path``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from coreharness import Core
from rocksdict import Options, Rdict

from waitline.processors.correlation import CoreSettings
from waitline.processors.kv import KV, MemoryKV, Overlay
from waitline.processors.state import PartitionState
from waitline.processors.store import PartitionStore, RocksKV

LAYERS = ["memory", "overlay", "rocksdb"]


@pytest.fixture(params=LAYERS)
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KV]:
    """The same KV contract against the in-memory twin, the write buffer and raw RocksDB."""
    if request.param == "memory":
        yield MemoryKV()
    elif request.param == "overlay":
        base = MemoryKV()
        base.put(b"\x00unrelated", b"base")  # the overlay must merge with a non-empty base
        yield Overlay(base)
    else:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        db = Rdict(str(tmp_path / "kv"), options)
        yield RocksKV(db)
        db.close()


@pytest.fixture(params=LAYERS)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PartitionState]:
    """The same state tests against every layer: memory, overlay, RocksDB (store + overlay)."""
    if request.param == "memory":
        yield PartitionState(MemoryKV())
    elif request.param == "overlay":
        yield PartitionState(Overlay(MemoryKV()))
    else:
        store = PartitionStore(tmp_path / "store", 0)
        store.open()
        yield store.state
        store.close()


@pytest.fixture
def core() -> Core:
    return Core(PartitionState(MemoryKV()))


@pytest.fixture
def make_core() -> Callable[..., Core]:
    def make(settings: CoreSettings | None = None) -> Core:
        return Core(PartitionState(MemoryKV()), settings)

    return make
