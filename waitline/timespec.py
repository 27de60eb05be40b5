"""Points in time as operators type them, and times as the operator commands print them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from waitline.schemas.durations import DurationError, parse_duration

__all__ = ["InstantError", "format_age", "format_ms", "now_ms", "parse_instant"]


class InstantError(ValueError):
    """Text that names no point in time."""


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_instant(text: str, now: int | None = None) -> int:
    """Epoch milliseconds from ``text``: a whole number (epoch ms), an ISO-8601 date or time
    (``2026-12-07``, ``2026-12-07T10:30:00Z``; without a zone: UTC), or a duration meaning
    that long before ``now`` (``15m``, ``2h``, ``PT1H``)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        pass
    else:
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int(when.timestamp() * 1000)
    try:
        ago = parse_duration(text)
    except DurationError:
        raise InstantError(
            f"{text!r} is not a time: use epoch milliseconds, ISO-8601 "
            "(2026-12-07T10:30:00Z) or a duration ago (15m, 2h)"
        ) from None
    return (now_ms() if now is None else now) - ago


def format_ms(ms: int | None) -> str:
    """``2026-12-07T10:30:00.123Z`` (UTC), or ``-``."""
    if ms is None:
        return "-"
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def format_age(ms: int) -> str:
    """A duration, coarsely: ``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    seconds = max(ms, 0) // 1000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
