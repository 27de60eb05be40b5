"""``run_worker`` freezes the process's heap before its loop, when the process is its own."""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Iterator

import pytest

from waitline import worker as worker_module
from waitline.config import Settings


class _Worker:
    """Stands in for the worker ``build_worker`` returns: its run records the frozen count."""

    def __init__(self) -> None:
        self.frozen_at_run: int | None = None

    def run(self, stop: threading.Event) -> None:
        self.frozen_at_run = gc.get_freeze_count()


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Worker]:
    fake = _Worker()
    monkeypatch.setattr(worker_module, "build_worker", lambda settings: fake)
    # run_worker installs SIGTERM/SIGINT handlers in the main thread: keep pytest's.
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    gc.unfreeze()
    try:
        yield fake
    finally:
        gc.unfreeze()  # the test process's objects back into collection


def test_a_worker_in_its_own_process_runs_on_a_frozen_heap(built: _Worker) -> None:
    worker_module.run_worker(Settings())
    assert built.frozen_at_run is not None and built.frozen_at_run > 1_000  # the modules, …


def test_a_worker_run_from_another_thread_leaves_the_heap_alone(built: _Worker) -> None:
    thread = threading.Thread(target=worker_module.run_worker, args=(Settings(),))
    thread.start()
    thread.join(10)
    assert built.frozen_at_run == 0
