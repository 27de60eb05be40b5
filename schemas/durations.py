"""Durations on the wire: ``"500ms"``, ``"30s"``, ``"24h"``, ``"3d"``, ``"1h30m"`` or ISO-8601.

A duration is always carried as text on the wire and parsed to whole milliseconds once, when
the record is validated. Accepted forms:

- compact units: ``ms``, ``s``, ``m``, ``h``, ``d``, ``w``, combinable (``"1h30m"``), optionally
  fractional (``"1.5s"``); a bare ``"0"`` means zero;
- ISO-8601 durations without years or months (those have no fixed length): ``"PT30S"``,
  ``"P3D"``, ``"P1DT12H"``, ``"PT0.5S"``.

A duration longer than ``MAX_DURATION_MS`` (100 years) is refused: no wait or event needs it,
and deadlines and expiry times must stay well inside the 8-byte integers of the state keys.
"""

from __future__ import annotations

import functools
import math
import re

__all__ = ["MAX_DURATION_MS", "DurationError", "format_duration", "parse_duration"]

MAX_DURATION_MS = 100 * 365 * 86_400_000

_UNIT_MS = {
    "ms": 1,
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}
_COMPACT = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_ISO = re.compile(
    r"P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


class DurationError(ValueError):
    """A duration string that is neither the compact form nor ISO-8601."""


@functools.lru_cache(maxsize=4096)
def parse_duration(text: str) -> int:
    """Parse a duration to whole milliseconds (rounded down); raise DurationError if malformed."""
    raw = text.strip()
    if raw == "0":
        return 0
    if raw.startswith("P"):
        match = _ISO.fullmatch(raw)
        if match is None or raw in ("P", "PT") or raw.endswith("T"):
            raise DurationError(
                f"not an ISO-8601 duration: {text!r} (years and months are not allowed)"
            )
        total = 0.0
        for unit, factor in (("w", "w"), ("d", "d"), ("h", "h"), ("m", "m"), ("s", "s")):
            value = match.group(unit)
            if value is not None:
                total += float(value) * _UNIT_MS[factor]
        return _bounded(total, text)
    pos = 0
    total_ms = 0.0
    for match in _COMPACT.finditer(raw):
        if match.start() != pos:
            break
        total_ms += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(raw):
        raise DurationError(
            f"bad duration {text!r}: use e.g. '500ms', '30s', '15m', '24h', '3d', '1h30m' "
            "or ISO-8601 'PT30S'"
        )
    return _bounded(total_ms, text)


def _bounded(total_ms: float, text: str) -> int:
    if not math.isfinite(total_ms) or total_ms > MAX_DURATION_MS:
        raise DurationError(f"duration {text[:40]!r} is longer than the limit of 100 years")
    return int(total_ms)


def format_duration(ms: int) -> str:
    """Render milliseconds in the compact form, largest units first (``90000`` → ``"1m30s"``)."""
    if ms == 0:
        return "0"
    parts: list[str] = []
    rest = ms
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNIT_MS[unit]
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
