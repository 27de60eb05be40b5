"""CEL ``if`` expressions: compiled once, evaluated in CEL's sandbox, never with ``eval``.

An expression sees two variables: ``async``, the candidate event as it is on the wire
(``async.name``, ``async.data``, ``async.correlationKey``, ``async.timestamp``...), and ``event``,
the registration's ``context`` (``{}`` when it has none). It must yield a bool. An evaluation
error (a missing field, a type mismatch, a non-bool result) counts as no match.

Cost is bounded before an expression is accepted. It is parsed (``processors.celcost``) and
its worst case computed for the fields it reads of an event and of a context, each at most
``MAX_FILTER_INPUT_BYTES`` (4 KiB) of JSON, the ``CostLimits`` given to ``FilterCache``; it is
refused at compile time, and so its registration rejected, when that worst case exceeds 2^18
evaluation steps or 2 MiB of values held at once. The worst expressions accepted took 5-10 ms
on maximal inputs (``benchmarks/filter_worst.py``). At evaluation, an event whose fields an
expression reads weigh more is no match for it (counted in ``oversized``); a context that
does is refused at registration (``context_problem``). In practice:

- reading fields, comparing, ``has``, ``size``, ``in``, ``contains``, ``startsWith``,
  ``endsWith``, ``matches`` with a literal pattern, conversions and literals are cheap;
- one comprehension (``all``, ``exists``, ``exists_one``) over an event's list is accepted
  with a small body, or several over different fields;
- a comprehension inside another over input lists, ``in`` over the context or ``matches``
  inside a comprehension over an event's list, ``map`` or ``filter`` over an input list (the
  engine copies their result on each element, so they are quadratic), and values doubled
  again and again are refused;
- functions other than these and ``timestamp``, ``duration``, ``dyn``, ``type`` and the
  timestamp getters, a ``matches`` pattern that is not a literal, and CEL syntax the parser
  does not take (``.?``/``[?``, message construction, a leading ``.``) are refused.

An evaluation converts only the fields the expression reads (``celcost.prune``): the event's
once per event, the context's once per evaluation.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import cel
from pydantic_core import to_json

from waitline.processors.celcost import CostLimits, Estimate, Reads, Refused, analyse, prune

__all__ = ["MAX_SOURCE", "CostLimits", "FilterCache", "FilterCompileError"]

MAX_SOURCE = 4096
_CONVERTED_PER_EVENT = 64  # read sets of one event kept converted


class FilterCompileError(ValueError):
    """The expression does not compile; the registration is rejected."""


@dataclass(frozen=True)
class _Compiled:
    program: Any  # cel.Program of the expression's index form
    estimate: Estimate
    event_reads: Reads  # of `async`, the candidate event
    context_reads: Reads  # of `event`, the registration's context
    event_key: object  # equal for expressions that read the same part of the event


class FilterCache:
    """Compiled programs by source text, least recently used evicted first."""

    def __init__(self, capacity: int = 10_000, limits: CostLimits | None = None) -> None:
        self._capacity = capacity
        self.limits = limits or CostLimits()
        self._programs: OrderedDict[str, _Compiled] = OrderedDict()
        self._candidate: dict[str, Any] | None = None  # the event `_converted` belongs to
        self._converted: dict[object, cel.Context | None] = {}
        self.errors = 0
        self.oversized = 0  # evaluations not run: the fields read weighed too much

    def compile(self, source: str) -> Any:
        """Return the compiled program; raise FilterCompileError saying why it is refused."""
        return self._compile(source).program

    def estimate(self, source: str) -> Estimate:
        """The worst case of one evaluation of ``source`` under ``limits``."""
        return self._compile(source).estimate

    def worst_steps(self, source: str) -> float:
        """``estimate(source).steps``, at least 1; an expression refused now (a wait restored
        from before a rule) costs nothing: ``matches`` does not run it."""
        try:
            return max(self._compile(source).estimate.steps, 1.0)
        except FilterCompileError:
            return 1.0

    def _compile(self, source: str) -> _Compiled:
        compiled = self._programs.get(source)
        if compiled is not None:
            self._programs.move_to_end(source)
            return compiled
        if len(source) > MAX_SOURCE:
            raise FilterCompileError(f"expression longer than {MAX_SOURCE} characters")
        try:
            cel.compile(source)  # CEL's own verdict and message come first
            analysis = analyse(source, self.limits)
            program = cel.compile(analysis.runs)
        except Refused as exc:
            raise FilterCompileError(str(exc)) from None
        except (ValueError, RuntimeError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise FilterCompileError(first_line) from None
        event_reads = analysis.reads["async"]
        compiled = _Compiled(
            program, analysis.estimate, event_reads, analysis.reads["event"], event_reads.key()
        )
        self._programs[source] = compiled
        if len(self._programs) > self._capacity:
            self._programs.popitem(last=False)
        return compiled

    def context_problem(self, source: str, context: Any) -> str | None:
        """Why ``context`` cannot go with ``source``: the fields of it the expression reads
        weigh more than its cost bound assumes (``CostLimits.max_context_bytes``)."""
        read = prune(context or {}, self._compile(source).context_reads)
        size, limit = len(to_json(read)), self.limits.max_context_bytes
        if size <= limit:
            return None
        return f"the context fields `if` reads are {size} bytes of JSON, over the limit of {limit}"

    def _convert(self, event: dict[str, Any]) -> cel.Context | None:
        """The event's fields an expression reads, as CEL values; None if they weigh more
        than the cost bound assumed (``CostLimits.max_event_bytes``)."""
        if len(to_json(event)) > self.limits.max_event_bytes:
            return None
        variables = cel.Context()
        variables.add_variable("async", event)
        return variables

    def matches(self, source: str, candidate: dict[str, Any], context: Any) -> bool:
        """Evaluate; any error or non-bool result is no match (and counted in ``errors``).

        The fields of ``candidate`` an expression reads are converted to CEL values once and
        reused while the same ``candidate`` object is passed (the waits of one event): it must
        not be changed in between.
        """
        try:
            compiled = self._compile(source)
            if candidate is not self._candidate:
                self._candidate = candidate
                self._converted = {}
            if compiled.event_key in self._converted:
                variables = self._converted[compiled.event_key]
            else:
                if len(self._converted) >= _CONVERTED_PER_EVENT:
                    self._converted = {}
                variables = self._convert(prune(candidate, compiled.event_reads))
                self._converted[compiled.event_key] = variables
            if variables is None:  # it would read more than its bound allows
                self.oversized += 1
                return False
            variables.add_variable("event", prune(context or {}, compiled.context_reads))
            result = compiled.program.execute(variables)
        except Exception:
            self.errors += 1
            return False
        if not isinstance(result, bool):
            self.errors += 1
            return False
        return result
