"""Log lines: text, or one JSON object per line (``WAITLINE_LOG_FORMAT=json``)."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from waitline.logs import JsonFormatter, configure_logging, log_format_from


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord(
        "waitline.worker", logging.WARNING, "f.py", 1, message, args, exc_info
    )
    record.created = 1_800_000_000.25
    return record


def test_a_record_is_one_json_object_on_one_line() -> None:
    line = JsonFormatter().format(_record("assigned %s\nand more", [1, 2]))
    assert "\n" not in line
    assert json.loads(line) == {
        "ts": "2027-01-15T08:00:00.250+00:00",
        "level": "WARNING",
        "logger": "waitline.worker",
        "message": "assigned [1, 2]\nand more",
    }


def test_the_worker_index_and_the_exception_when_there_are() -> None:
    entry = json.loads(JsonFormatter(worker=3).format(_record("failed", exc=True)))
    assert entry["worker"] == 3
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert entry["exc_info"].endswith("ValueError: boom")


def test_the_format_the_command_line_reads() -> None:
    assert log_format_from({}) == "text"
    assert log_format_from({"WAITLINE_LOG_FORMAT": "json"}) == "json"
    assert log_format_from({"WAITLINE_LOG_FORMAT": "yaml"}) == "text"  # Settings refuses it


@pytest.mark.parametrize(
    ("log_format", "worker", "expected"),
    [
        ("text", None, " INFO waitline.test hello\n"),
        ("text", 2, " [worker-2] INFO waitline.test hello\n"),
        (
            "json",
            2,
            '"level": "INFO", "logger": "waitline.test", "message": "hello", "worker": 2}\n',
        ),
    ],
)
def test_configure_logging(
    capsys: pytest.CaptureFixture[str], log_format: str, worker: int | None, expected: str
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()  # as in a fresh process (pytest's own handlers are back after)
    try:
        configure_logging(logging.INFO, log_format, worker)  # type: ignore[arg-type]
        logging.getLogger("waitline.test").info("hello")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert capsys.readouterr().err.endswith(expected)
