"""Log output: text lines for people, or JSON lines for a log pipeline (``WAITLINE_LOG_FORMAT``).

Text: ``time level logger message`` (a worker process of ``--processes`` adds ``[worker-I]``).
JSON: one object per line, with ``ts`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``,
``message``, ``worker`` (the process index, under ``--processes`` only) and, when the record
has them, ``exc_info`` and ``stack_info`` (the formatted traceback, its newlines escaped).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["KAFKA_LOGGER", "JsonFormatter", "LogFormat", "configure_logging", "log_format_from"]

LogFormat = Literal["text", "json"]

# The logger librdkafka's own messages go to where they are routed through Python (JSON logs).
KAFKA_LOGGER = "waitline.kafka"


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_format_from(environ: Mapping[str, str]) -> LogFormat:
    """``WAITLINE_LOG_FORMAT`` as the command line reads it before its settings are built: a
    value other than ``json`` gives text here, and ``Settings`` refuses a wrong one."""
    return "json" if environ.get("WAITLINE_LOG_FORMAT") == "json" else "text"


def configure_logging(
    level: int, log_format: LogFormat = "text", worker: int | None = None
) -> None:
    """Log to stderr at ``level`` in ``log_format``; ``worker``: the index of a worker process
    under ``--processes``. Like ``logging.basicConfig``, a no-op where the root logger has
    handlers already."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(worker))
    else:
        tag = "" if worker is None else f"[worker-{worker}] "
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {tag}%(levelname)s %(name)s %(message)s")
        )
    logging.basicConfig(level=level, handlers=[handler])
