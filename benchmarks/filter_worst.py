"""The worst `if` expressions the cost bound accepts, on maximal inputs: time and memory.

    python benchmarks/filter_worst.py           # every case, ~1-2 minutes
    python benchmarks/filter_worst.py --case scan2

Inputs are the caps the estimator assumes (processors.celcost.CostLimits): an event and a context
of the caps, shaped for the case (the most list elements it holds, the
slowest values to convert). Each case runs in a child process so that its peak RSS (VmHWM, reset
before the evaluations) is its own;
the figures are the best of --repeat evaluations, the event's fields converted beforehand (that
is done once per event, and reported apart). It also prints what converting the
whole event costs on every evaluation, as `FilterCache` did before it converted only the
fields an expression reads, once per event.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import cel

from waitline.processors.celcost import CostLimits, prune
from waitline.processors.filters import FilterCache, FilterCompileError

LIMITS = CostLimits()
R = LIMITS.max_event_bytes
C = LIMITS.max_context_bytes


def _event(data: Any) -> dict[str, Any]:
    return {"name": "paid", "correlationKey": "o", "eventId": "e", "timestamp": 1, "data": data}


def _fill(unit: str, budget: int, wrap: str = "[{}]") -> Any:
    """A JSON value of about ``budget`` bytes: ``unit`` repeated inside ``wrap``."""
    count = (budget - 200) // (len(unit) + 1)
    return json.loads(wrap.format(",".join([unit] * count)))


def _ints() -> Any:  # the most elements the cap holds
    return _fill("0", R)


def _empty_lists(budget: int) -> Any:  # the slowest to convert per byte (~1.6 us a unit)
    return _fill("[]", budget)


def _largest(build: Callable[[int], str], hi: int = 2000) -> str:
    """``build(n)`` for the largest ``n`` the budget accepts."""
    cache = FilterCache()
    lo, best = 1, ""
    while lo <= hi:
        mid = (lo + hi) // 2
        try:
            cache.compile(build(mid))
        except FilterCompileError:
            hi = mid - 1
        else:
            best, lo = build(mid), mid + 1
    if not best:
        raise SystemExit(f"nothing accepted: {build(1)}")
    return best


def _or_chain(var: str, n: int) -> str:
    return " || ".join(f"{var} == {i + 1}" for i in range(n))


# name -> (what it is, expression maker, event data, context)
CASES: dict[str, tuple[str, Callable[[], str], Callable[[], Any], Callable[[], Any]]] = {
    "scan": (
        "one exists() over ints, with the longest || body accepted",
        lambda: _largest(lambda n: f"async.data.exists(x, {_or_chain('x', n)})"),
        _ints,
        dict,
    ),
    "scans": (
        "as many all() over ints, one after the other, as accepted",
        lambda: _largest(lambda n: " && ".join(["async.data.all(x, x == 0)"] * n)),
        _ints,
        dict,
    ),
    "items": (
        "exists() over a maximal list of items, two fields each",
        lambda: 'async.data.exists(i, i.sku == "x" && i.qty > 2)',
        lambda: _fill('{"sku":"y","qty":0}', R),
        dict,
    ),
    "context": (
        "a maximal context of empty lists (converted every evaluation), scanned",
        lambda: _largest(lambda n: f"event.l.exists(x, {_or_chain('x', n)})"),
        dict,
        lambda: {"l": _empty_lists(C)},
    ),
    "regex": (
        "matches() over a maximal string, the most automaton states accepted",
        lambda: _largest(lambda n: f'async.data.matches("a{{{n}}}b")', hi=1000),
        lambda: "a" * (R - 200),
        dict,
    ),
    "unicode": (
        "matches() over a maximal string, the largest \\w repetition accepted",
        lambda: _largest(lambda n: f'async.data.matches("\\\\w{{{n}}}b")', hi=1000),
        lambda: "a" * (R - 200),
        dict,
    ),
    "compile": (
        "as many compilations of a 49 ms pattern as accepted (cel-rust compiles per call)",
        lambda: _largest(lambda n: " || ".join(['"a".matches("\\\\w{100}")'] * n)),
        dict,
        dict,
    ),
    "memory": (
        "the event's list copied into a list (the largest value accepted)",
        lambda: "size([async.data]) > 0",
        _ints,
        dict,
    ),
}


def _rss(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> int:
    """Reset the peak RSS to the current one (Linux), and return it."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return _rss("VmRSS")


def run_case(name: str, repeat: int) -> dict[str, Any]:
    what, make, data, context = CASES[name]
    source = make()
    cache = FilterCache()
    estimate = cache.estimate(source)
    candidate, ctx = _event(data()), context()
    t0 = time.perf_counter()
    # What the first evaluation of an event does first: convert the fields the expression reads.
    compiled = cache._compile(source)
    converted = cel.Context()
    converted.add_variable("async", prune(candidate, compiled.event_reads))
    cache._candidate, cache._converted = candidate, {compiled.event_key: converted}
    first = time.perf_counter() - t0
    before = _reset_peak()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        cache.matches(source, candidate, ctx)
        best = min(best, time.perf_counter() - t0)
    return {
        "case": name,
        "what": what,
        "source": source if len(source) < 120 else source[:100] + f"... ({len(source)} chars)",
        "steps": estimate.steps,
        "bytes": estimate.bytes,
        "convert_ms": first * 1e3,
        "eval_ms": best * 1e3,
        "rss_mib": max(0, _rss("VmHWM") - before) / 2**20,
        "errors": cache.errors,
    }


def conversion(repeat: int) -> None:
    """What converting a whole maximal event costs per evaluation (before), and now."""
    shapes = {"ints": _ints(), "0.35M empty lists": _empty_lists(R)}
    context = {"l": _empty_lists(C)}
    whole = cel.compile("true")
    for shape, data in shapes.items():
        candidate = _event(data)
        size = len(json.dumps(candidate, separators=(",", ":")))
        t0 = time.perf_counter()
        whole.execute({"async": candidate, "event": context})
        every = time.perf_counter() - t0
        cache = FilterCache()
        timings = []
        for source in ('async.name == "paid"', "size(async.data) > 0"):
            cache.matches(source, candidate, {})
            t0 = time.perf_counter()
            for _ in range(repeat):
                cache.matches(source, candidate, {})
            timings.append((time.perf_counter() - t0) / repeat)
        fresh = FilterCache()
        t0 = time.perf_counter()
        fresh.matches("size(async.data) > 0", candidate, {})
        once = time.perf_counter() - t0
        print(
            f"event {shape} ({size / 2**20:.2f} MiB) + context of empty lists: "
            f"whole conversion per evaluation {every * 1e3:.0f} ms; now: a field "
            f"{timings[0] * 1e6:.0f} us, all of data {once * 1e3:.0f} ms once per event, "
            f"then {timings[1] * 1e6:.0f} us"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        result = run_case(args.case, args.repeat)
        print(json.dumps(result) if args.json else result)
        return
    print(
        f"budget: {LIMITS.max_steps:.3g} steps, {LIMITS.max_bytes / 2**20:g} MiB of values; "
        f"event {R / 2**20:g} MiB, context {C / 2**10:g} KiB"
    )
    conversion(args.repeat)
    for name in CASES:
        out = subprocess.run(
            [sys.executable, __file__, "--case", name, "--repeat", str(args.repeat), "--json"],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:  # the budget accepts no expression of this kind
            print(f"{name:8s} {(out.stderr.strip().splitlines() or ['failed'])[-1]}")
            continue
        r = json.loads(out.stdout)
        print(
            f"{r['case']:8s} {r['eval_ms']:8.1f} ms/eval "
            f"(+{r['convert_ms']:.0f} ms once per event), "
            f"+{r['rss_mib']:.0f} MiB peak RSS; bound {r['steps']:.3g} steps, "
            f"{r['bytes'] / 2**20:.1f} MiB; {r['what']}\n         {r['source']}"
        )


if __name__ == "__main__":
    main()
