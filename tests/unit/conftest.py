"""Unit fixtures: the state layers and a core to drive."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from coreharness import Core

from processors.correlation import CoreSettings
from processors.kv import MemoryKV, Overlay
from processors.state import PartitionState
from processors.store import PartitionStore


@pytest.fixture(params=["memory", "overlay", "rocksdb"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PartitionState]:
    """The same state tests against every layer: memory, overlay, RocksDB."""
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
