"""Where a live measurement's time goes: each process's CPU over the measurement's window, and
the summary of what benchmarks/traced_worker.py recorded in it (``--trace``)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .measure import percentiles


class Cpu:
    """A live measurement's window, from construction to ``stop`` (wall-clock ``since`` and
    ``stopped``), and with a trace the CPU each process of ``pids`` used in it, in % of a core,
    and the whole machine's (``machine``: every process; ``steal``: taken by the host)."""

    def __init__(self, trace: Path | None, pids: dict[str, int | None]) -> None:
        self.since = time.time()
        self.started = time.monotonic()
        self.percent: dict[str, float] = {}
        self.pids: dict[str, int] = {}
        self.machine: tuple[float, float] | None = None
        if trace is not None:
            self.pids = {name: pid for name, pid in pids.items() if pid is not None}
            self.machine = _machine_cpu()
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.stopped = time.time()
        elapsed = time.monotonic() - self.started
        for name, pid in self.pids.items():
            before, after = self.before[name], cpu_seconds(pid)
            if before is not None and after is not None:
                self.percent[name] = round((after - before) / elapsed * 100)
        after_machine = _machine_cpu() if self.machine is not None else None
        if self.machine is not None and after_machine is not None:
            (busy, steal), (busy_after, steal_after) = self.machine, after_machine
            self.percent["machine"] = round((busy_after - busy) / elapsed * 100)
            self.percent["steal"] = round((steal_after - steal) / elapsed * 100)


def _machine_cpu() -> tuple[float, float] | None:
    """CPU seconds of all cores so far (Linux /proc/stat): busy (not idle or waiting on I/O),
    and stolen by the host."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
        # user nice system idle iowait irq softirq steal …; guest time is counted in user's
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first[1:9])
    except (OSError, IndexError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of a process so far (Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def traced(trace: Path | None, cpu: Cpu) -> dict[str, Any]:
    """``{"trace": …}`` from a traced worker's record: what happened in the measurement's
    window (``cpu``)."""
    if trace is None or not trace.exists():
        return {}
    try:
        raw = json.loads(trace.read_text())
    except ValueError as exc:  # not a whole record: the measurement stands without it
        print(f"the trace {trace} is not readable ({exc}); no trace", file=sys.stderr)
        return {}
    summary = trace_summary(raw, cpu.since, cpu.stopped)
    return {"trace": summary | {"cpu_percent": cpu.percent}}


# The timers' stages a trace records (benchmarks/traced_worker.py), with what each measures.
TIMER_STAGES = {
    "timer_sent_ms": "timer command sent after its deadline",
    "timer_hop_ms": "timer command produced → applied",
    "timer_applied_ms": "timer applied after its deadline",
}


def trace_summary(raw: dict[str, Any], since: float, until: float) -> dict[str, Any]:
    """Percentiles of what benchmarks/traced_worker.py recorded between wall-clock ``since`` and
    ``until`` (the measurement's start and end): the busy loops' durations and each phase's
    share of their time, the timers' stages and the collector's pauses, each in ms."""

    def inside(at: float) -> bool:
        return since <= at <= until

    loops = [loop for loop in raw["loops"] if inside(loop[0])]
    total = sum(loop[1] for loop in loops) or 1.0
    each: dict[str, list[float]] = {}
    for loop in loops:
        for phase, seconds in loop[3].items():
            each.setdefault(phase.strip("_"), []).append(seconds)
    summary: dict[str, Any] = {
        "loops": len(loops),
        "loop_ms": percentiles([loop[1] * 1000 for loop in loops]),
        "loop_share": {phase: round(sum(times) / total, 3) for phase, times in each.items()},
        "phase_p99_ms": {
            phase: percentiles([t * 1000 for t in times])["p99"] for phase, times in each.items()
        },
        "batch_records": percentiles([float(loop[2]) for loop in loops]),
    }
    for stage in TIMER_STAGES:
        values = [ms for at, ms in raw[stage] if inside(at)]
        if values:
            summary[stage] = percentiles(values)
    pauses = [(int(generation), ms) for at, generation, ms in raw["gc_ms"] if inside(at)]
    full = [ms for generation, ms in pauses if generation == 2]
    summary["gc"] = {
        "pauses": len(pauses),
        "total_ms": round(sum(ms for _, ms in pauses), 1),
        "max_ms": round(max((ms for _, ms in pauses), default=0.0), 1),
        "full": len(full),
        "full_max_ms": round(max(full, default=0.0), 1),
    }
    return summary


def trace_line(found: dict[str, Any]) -> str:
    """A traced measurement's summary as indented lines to print after its result (empty if
    not traced)."""
    trace = found.get("trace")
    if not trace:
        return ""
    parts = [f"{trace['loops']} busy loops, ms {trace['loop_ms']}"]
    if trace.get("cpu_percent"):
        used = ", ".join(f"{name} {pct}%" for name, pct in trace["cpu_percent"].items())
        parts.append(f"CPU while measured (% of a core): {used}")
    shares = ", ".join(
        f"{phase} {share:.0%} (p99 {trace['phase_p99_ms'][phase]} ms)"
        for phase, share in sorted(trace["loop_share"].items())
    )
    inside = "commit (at-least-once also an idle loop's settle; exactly-once also fire_timers)"
    parts.append(f"of their time: {shares}; flush (waiting for acks) is inside {inside}")
    gc = trace["gc"]
    parts.append(
        f"GC pauses: {gc['pauses']}, {gc['total_ms']} ms in all, the longest {gc['max_ms']} ms; "
        f"full collections {gc['full']}, the longest {gc['full_max_ms']} ms"
    )
    for stage, label in TIMER_STAGES.items():
        if stage in trace:
            parts.append(f"{label}: {trace[stage]}")
    return "".join(f"\n  {part}" for part in parts)
