"""A worker freezes its process's heap before its loop when the process is its own: the
``waitline worker`` command and ``run_workers``' children, not an application calling
``run_worker``."""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Iterator

import pytest

from waitline import cli
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


def test_the_worker_command_runs_its_worker_on_a_frozen_heap(built: _Worker) -> None:
    assert cli.main(["worker"]) == 0
    assert built.frozen_at_run is not None and built.frozen_at_run > 1_000  # the modules, …


def test_a_worker_process_of_its_own_settles_its_heap(built: _Worker) -> None:
    worker_module.run_worker(Settings(), own_process=True)
    assert built.frozen_at_run is not None and built.frozen_at_run > 1_000


def test_an_application_calling_run_worker_keeps_its_heap_as_it_was(built: _Worker) -> None:
    worker_module.run_worker(Settings())
    assert built.frozen_at_run == 0
