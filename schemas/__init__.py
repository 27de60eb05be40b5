"""waitline's wire contract: pydantic models, the record key, durations, JSON Schema export."""

from waitline.schemas.durations import DurationError, format_duration, parse_duration
from waitline.schemas.keys import make_key, partition_for, split_key
from waitline.schemas.models import (
    Action,
    CancelWait,
    Event,
    OnTimeout,
    Outcome,
    ResumeCommand,
    TimerFired,
    WaitCommand,
    WaitRegistration,
    parse_wait_command,
)

__all__ = [
    "Action",
    "CancelWait",
    "DurationError",
    "Event",
    "OnTimeout",
    "Outcome",
    "ResumeCommand",
    "TimerFired",
    "WaitCommand",
    "WaitRegistration",
    "format_duration",
    "make_key",
    "parse_duration",
    "parse_wait_command",
    "partition_for",
    "split_key",
]
