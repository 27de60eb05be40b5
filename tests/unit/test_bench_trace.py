"""``--trace``: what benchmarks/traced_worker.py records, and how the benchmark summarises it."""

from __future__ import annotations

import gc
import json
import os
import time
from pathlib import Path

import pytest
from benchmodules import load
from workerharness import TOPICS, worker_with_store

from waitline.processors.correlation import Correlator, Target
from waitline.processors.runtime import Worker
from waitline.schemas.keys import make_key, partition_for

cli = load("bench.cli")
tracing = load("bench.trace")
core = load("core")
traced = load("traced_worker")


def test_the_summary_keeps_what_happened_during_the_measurement() -> None:
    raw = {
        # [wall-clock s at the end, seconds, records, {phase: seconds}]
        "loops": [
            [9.0, 0.5, 20_000, {"_apply": 0.4}],  # before the start: the pending waits
            [10.0, 0.02, 10, {"_apply": 0.01, "_commit": 0.008, "_flush": 0.006}],
            [11.0, 0.04, 20, {"_apply": 0.03, "_commit": 0.01}],
            [13.0, 0.9, 5, {"_apply": 0.9}],  # after the end: the worker stopping
        ],
        "timer_sent_ms": [[9.5, 3_900.0], [10.5, 20.0], [10.6, 40.0]],  # first: the probe
        "timer_hop_ms": [[10.7, 30.0]],
        "timer_applied_ms": [[10.7, 60.0]],
        # [s, generation, ms]: before the start, two inside, one while writing the record
        "gc_ms": [[9.1, 2, 40.0], [10.2, 0, 0.5], [10.3, 2, 3.0], [13.1, 2, 25.0]],
    }
    summary = tracing.trace_summary(raw, 10.0, 12.0)
    assert summary["loops"] == 2
    assert summary["loop_ms"] == {"p50": 40.0, "p99": 40.0, "max": 40.0}
    assert summary["loop_share"] == {"apply": 0.667, "commit": 0.3, "flush": 0.1}
    assert summary["phase_p99_ms"] == {"apply": 30.0, "commit": 10.0, "flush": 6.0}
    assert summary["batch_records"]["max"] == 20.0
    assert summary["timer_sent_ms"]["max"] == 40.0  # not the probe's 3.9 s
    assert summary["timer_hop_ms"]["p50"] == 30.0
    assert summary["timer_applied_ms"]["p50"] == 60.0
    assert summary["gc"] == {
        "pauses": 2,
        "total_ms": 3.5,
        "max_ms": 3.0,
        "full": 1,
        "full_max_ms": 3.0,
    }
    line = tracing.trace_line({"trace": summary | {"cpu_percent": {"worker": 65}}})
    assert "2 busy loops" in line and "worker 65%" in line and "apply 67% (p99 30.0 ms)" in line
    assert "full collections 1, the longest 3.0 ms" in line


def test_a_measurement_without_timers_has_no_timer_stages() -> None:
    raw = {"loops": [], "timer_sent_ms": [], "timer_hop_ms": [], "timer_applied_ms": []}
    summary = tracing.trace_summary(raw | {"gc_ms": []}, 0.0, 1.0)
    assert summary["loops"] == 0 and "timer_sent_ms" not in summary
    assert summary["gc"]["pauses"] == 0
    assert tracing.trace_line({}) == ""


def test_trace_goes_with_a_live_measurement(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--trace"])
    assert exited.value.code == 2
    assert "--trace goes with --latency-at or --lateness-at" in capsys.readouterr().err


def test_the_traced_worker_records_its_phases_and_each_timers_way(tmp_path: Path) -> None:
    """The patch points exist and record: an applied batch's phase, a timer sent once although
    the scan finds it twice, and its command applied; undone, the classes are as they were."""
    original_apply, original_due = Worker._apply, Correlator.due_timers
    trace = traced.Trace()
    undo = trace.install()
    pair = make_key("bench", "k")
    partition = partition_for(pair, 8)
    commands = TOPICS[Target.WAIT_COMMANDS]
    try:
        with worker_with_store(tmp_path, partition) as worker:
            store = worker.stores[partition]
            registered = int(time.time() * 1000) - 5_000
            wait = {"waitId": "w", "runId": "r", "name": "bench", "correlationKey": "k"}
            body = json.dumps(wait | {"timeout": "1s"}).encode()
            message = core.FakeMessage(commands, partition, 0, pair, body, registered)
            worker._apply([message])
            assert trace._phases["_apply"] > 0
            for _ in range(2):  # a timer stays due until its command is read back
                due = worker.core.due_timers(store.state, registered + 2_000, partition, 10, 0)
            assert len(due) == 1 and len(trace.timer_sent_ms) == 2  # one [at, ms], flat
            assert trace.timer_sent_ms[1] >= 4_000  # now − the deadline, 1 s after registering
            command = core.FakeMessage(
                commands, partition, 1, pair, due[0].value, int(time.time() * 1000) - 30
            )
            emits, _offsets = worker._apply([command])
            assert [json.loads(e.value)["outcome"] for e in emits] == ["timed_out"]
            assert len(trace.timer_applied_ms) == 2 and trace.timer_hop_ms[1] >= 30
            gc.collect(2)
            assert [row[1] for row in trace.as_json()["gc_ms"]][-1] == 2  # the pause, recorded
            loop = trace._loop(lambda _worker: 3)
            assert loop(worker) == 3 and trace.loops[-1][2] == 3
    finally:
        undo()
    assert Worker._apply is original_apply and Correlator.due_timers is original_due
    assert trace._gc not in gc.callbacks


def test_cpu_is_measured_per_process_and_for_the_machine() -> None:
    """A busy loop of ~0.3 s in this process: its own CPU and the machine's (which includes it)
    both grow by most of it; without a trace nothing is measured."""
    cpu = tracing.Cpu(Path("trace.json"), {"self": os.getpid(), "gone": None})
    started = time.monotonic()
    while time.monotonic() - started < 0.3:
        pass
    cpu.stop()
    assert set(cpu.percent) == {"self", "machine", "steal"}
    assert cpu.percent["self"] >= 50 and cpu.percent["machine"] >= cpu.percent["self"] - 10
    assert cpu.stopped >= time.time() - 5
    untraced = tracing.Cpu(None, {"self": os.getpid()})
    untraced.stop()
    assert untraced.percent == {}
