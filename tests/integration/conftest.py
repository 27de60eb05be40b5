"""Integration fixtures; the machinery lives in ``harness.py``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Stack, make_stack


@pytest.fixture
def stack(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Stack]:
    """A fresh deployment with no worker started yet."""
    s = make_stack(kafka_bootstrap, tmp_path)
    yield s
    s.close()


@pytest.fixture(scope="module")
def live_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A deployment with one running worker, shared by a module's tests (unique keys each)."""
    s = make_stack(kafka_bootstrap, tmp_path_factory.mktemp("live"))
    s.start_worker()
    yield s
    s.close()


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:12]
