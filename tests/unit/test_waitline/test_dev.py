"""``waitline dev`` removes its temporary directory whichever way start-up ends (fake broker
and topics; the real ones are in tests/integration/test_dev_stack.py)."""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import waitline.dev
from waitline.errors import TopicError

Handler = Callable[[int, object], None]


class FakeBroker:
    on_start: Callable[[], None] = staticmethod(lambda: None)

    def __init__(self, *, port: int, log_path: Path) -> None:
        log_path.write_text("broker output\n")  # something in the directory to remove
        self.stopped = False

    def start(self) -> str:
        FakeBroker.on_start()
        return "127.0.0.1:1"

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[int, Handler]:
    """The dev stack on fakes, its temporary directory under ``tmp_path``; the signal handlers
    it installs, by signal."""
    installed: dict[int, Handler] = {}
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(waitline.dev, "EmbeddedBroker", FakeBroker)
    monkeypatch.setattr(waitline.dev, "AdminClient", lambda _config: object())
    monkeypatch.setattr(waitline.dev.signal, "signal", installed.__setitem__)
    return installed


def test_a_failed_topic_creation_leaves_no_directory(
    handlers: dict[int, Handler], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def create_topics(_admin: object, _topics: object) -> dict[str, str]:
        assert any(tmp_path.iterdir())  # the directory is there until start-up fails
        raise TopicError("no topics today")

    monkeypatch.setattr(waitline.dev, "create_topics", create_topics)
    with pytest.raises(TopicError):
        waitline.dev.run_dev(workers=1)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_start_up_stops_before_the_next_step(
    handlers: dict[int, Handler], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    created: list[Any] = []

    def create_topics(*args: Any) -> dict[str, str]:
        created.append(args)
        return {}

    monkeypatch.setattr(waitline.dev, "create_topics", create_topics)
    monkeypatch.setattr(
        FakeBroker, "on_start", staticmethod(lambda: handlers[signal.SIGINT](signal.SIGINT, None))
    )
    assert waitline.dev.run_dev(workers=1) == 0
    assert created == []
    assert list(tmp_path.iterdir()) == []
