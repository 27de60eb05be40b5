"""CEL ``if`` expressions: compiled once, evaluated in CEL's sandbox, never with ``eval``.

An expression sees two variables: ``async``, the candidate event as it is on the wire
(``async.name``, ``async.data``, ``async.correlationKey``, ``async.timestamp``...), and ``event``,
the registration's ``context`` (``{}`` when it has none). It must yield a bool.

Cost is bounded by construction: CEL has no loops or recursion, the source is at most
``MAX_SOURCE`` characters, the inputs are bounded by the record size limit, and a comprehension
macro (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) may not sit inside another one's
arguments, so evaluation is linear in the event's size (nesting three of them over a
1,000-element list would be 10^9 steps while the partition waits). An evaluation error (a
missing field, a type mismatch, a non-bool result) counts as no match.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import cel

__all__ = ["MAX_SOURCE", "FilterCache", "FilterCompileError"]

MAX_SOURCE = 4096
_COMPREHENSIONS = frozenset({"all", "exists", "exists_one", "map", "filter"})
# String literals (skipped), a `.name(` call, an opening or a closing bracket.
_TOKEN = re.compile(
    r"""(?P<str>'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")"""
    r"|(?P<macro>\.\s*(?P<name>[A-Za-z_]\w*)\s*\()|(?P<open>[(\[{])|(?P<close>[)\]}])"
)


class FilterCompileError(ValueError):
    """The expression does not compile; the registration is rejected."""


class FilterCache:
    """Compiled programs by source text, least recently used evicted first."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._programs: OrderedDict[str, Any] = OrderedDict()
        self.errors = 0

    def compile(self, source: str) -> Any:
        """Return the compiled program; raise FilterCompileError with CEL's message."""
        program = self._programs.get(source)
        if program is not None:
            self._programs.move_to_end(source)
            return program
        if len(source) > MAX_SOURCE:
            raise FilterCompileError(f"expression longer than {MAX_SOURCE} characters")
        _refuse_nested_comprehensions(source)
        try:
            program = cel.compile(source)
        except (ValueError, RuntimeError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise FilterCompileError(first_line) from None
        self._programs[source] = program
        if len(self._programs) > self._capacity:
            self._programs.popitem(last=False)
        return program

    def matches(self, source: str, candidate: dict[str, Any], context: Any) -> bool:
        """Evaluate; any error or non-bool result is no match (and counted in ``errors``)."""
        try:
            result = self.compile(source).execute({"async": candidate, "event": context or {}})
        except Exception:
            self.errors += 1
            return False
        if not isinstance(result, bool):
            self.errors += 1
            return False
        return result


def _refuse_nested_comprehensions(source: str) -> None:
    """Raise FilterCompileError when a comprehension macro appears inside another's arguments."""
    frames: list[bool] = []  # one per open bracket: does it hold a comprehension's arguments?
    for token in _TOKEN.finditer(source):
        if token["str"] is not None:
            continue
        if token["macro"] is not None:
            comprehension = token["name"] in _COMPREHENSIONS
            if comprehension and any(frames):
                raise FilterCompileError(
                    f"`{token['name']}` inside another comprehension: nested comprehensions "
                    "are refused because their cost grows with the product of the list sizes"
                )
            frames.append(comprehension)
        elif token["open"] is not None:
            frames.append(False)
        elif frames:
            frames.pop()
