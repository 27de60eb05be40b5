"""The command line's everyday edges: ``--version``, and Ctrl-C in ``waitline wait``."""

from __future__ import annotations

import importlib.metadata
from types import SimpleNamespace
from typing import Any

import pytest

import waitline.cli
from waitline.cli import main


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"waitline {importlib.metadata.version('waitline')}\n"


def test_ctrl_c_in_wait_says_the_wait_stays_registered(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def wait_for_event(*_args: Any, **_kwargs: Any) -> None:
        raise KeyboardInterrupt

    client = SimpleNamespace(wait_for_event=wait_for_event)
    monkeypatch.setattr(waitline.cli, "_client", lambda _args: client)
    code = main(["wait", "order paid", "o-1", "--timeout", "5m", "--wait-id", "w 1"])
    assert code == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        "waitline: interrupted; the wait stays registered "
        "(waitline cancel 'w 1' 'order paid' o-1 cancels it)"
    )


def test_ctrl_c_elsewhere_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def connect(_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(waitline.cli, "_client", connect)
    assert main(["send", "n", "k"]) == 130
    assert capsys.readouterr().err == "waitline: interrupted\n"
