"""The worker's per-record work without a broker: core, state and RocksDB, one process.

Feeds the match-heavy input of ``make bench`` (``bench/workloads.py``: 100k waits over 20k keys,
then 200k events, half matching; ``--scale`` shrinks it), or with ``--workload hot-pair`` its
hot-pair input (one pair: 100k events, 10k waits, 10k events), through the worker's own
``Worker._apply`` and the store's commit (batches of 20,000, as the run loop takes them from a
backlog; scaled with the input), with the Kafka messages replaced by plain objects and the
changelog's records counted instead of produced. What it leaves out is librdkafka's part
(consume, produce, flush); what it keeps is the Python work that bounds the worker
(docs/benchmarks.md, "What limits the numbers").

Two readings:

- ``python benchmarks/core.py``: µs per input record, best of ``--repeat`` (wall clock; the
  machine's speed drifts, so compare trees in interleaved runs);
- ``python benchmarks/core.py --callgrind``: the same run under valgrind's callgrind, which
  counts the instructions executed. The count does not drift with the machine: two trees are
  compared by one run each (``--scale 0.1`` keeps a run to a few minutes). The instructions of the
  set-up (imports, building the input, opening and closing the stores) are measured by a run
  that does all that and applies nothing, and subtracted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from waitline.processors.correlation import Target  # noqa: E402
from waitline.processors.runtime import RuntimeConfig, Worker  # noqa: E402
from waitline.processors.store import PartitionStore  # noqa: E402
from waitline.schemas.keys import make_key, partition_for  # noqa: E402

PARTITIONS = 8
BATCH = 20_000
TOPICS = {target: target.value for target in Target}


class FakeMessage:
    """What ``Worker._apply`` reads of a confluent-kafka ``Message``."""

    __slots__ = ("_key", "_offset", "_partition", "_topic", "_ts", "_value")

    def __init__(
        self, topic: str, partition: int, offset: int, key: bytes, value: bytes, ts: int
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._ts = key, value, (1, ts)

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return self._ts


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def match_heavy(scale: float, start_ms: int) -> list[FakeMessage]:
    """The benchmark's match-heavy stream, partitioned as the murmur2 producer would."""
    waits, events, keys = int(100_000 * scale), int(200_000 * scale), max(int(20_000 * scale), 1)
    records: list[tuple[str, bytes, bytes]] = []
    for i in range(waits):
        key = f"k{i % keys}"
        wait = {"waitId": f"w{i}", "runId": f"r{i}", "name": "bench", "correlationKey": key}
        wait["timeout"] = "1h"
        records.append(("wait-commands", make_key("bench", key), _encode(wait)))
    for i in range(events):
        key = f"k{(i // 2) % keys}" if i % 2 == 0 else f"miss{i}"
        event: dict[str, Any] = {"eventId": f"e{i}", "name": "bench", "correlationKey": key}
        event["data"] = {"i": i}
        records.append(("events", make_key("bench", key), _encode(event)))
    return _messages(records, start_ms)


def hot_pair(scale: float, start_ms: int) -> list[FakeMessage]:
    """The benchmark's hot-pair stream: one pair, 100k events buffered, then 10k waits that count
    only later events (lookback 0), then 10k events, the first of which resolves them all."""
    events, waits = int(100_000 * scale), int(10_000 * scale)
    pair = make_key("bench", "hot")
    records: list[tuple[str, bytes, bytes]] = []
    for i in range(events):
        event = {"eventId": f"he{i}", "name": "bench", "correlationKey": "hot", "data": {"i": i}}
        records.append(("events", pair, _encode(event)))
    for i in range(waits):
        wait = {"waitId": f"hw{i}", "runId": f"hr{i}", "name": "bench", "correlationKey": "hot"}
        wait |= {"timeout": "1h", "lookback": "0"}
        records.append(("wait-commands", pair, _encode(wait)))
    for i in range(waits):
        event = {"eventId": f"hf{i}", "name": "bench", "correlationKey": "hot", "data": {"i": i}}
        records.append(("events", pair, _encode(event)))
    return _messages(records, start_ms)


WORKLOADS = {"match-heavy": match_heavy, "hot-pair": hot_pair}


def _messages(records: list[tuple[str, bytes, bytes]], start_ms: int) -> list[FakeMessage]:
    """The records as the murmur2 producer would partition them, 100 per millisecond."""
    next_offset: dict[tuple[str, int], int] = {}
    out = []
    for n, (topic, pair, value) in enumerate(records):
        partition = partition_for(pair, PARTITIONS)
        offset = next_offset.get((topic, partition), 0)
        next_offset[topic, partition] = offset + 1
        out.append(FakeMessage(topic, partition, offset, pair, value, start_ms + n // 100))
    return out


def run(
    messages: list[FakeMessage], root: Path, batch: int, process: bool = True
) -> tuple[float, int]:
    """Apply and commit every batch (none unless ``process``); return (seconds, changelog
    records)."""
    config = RuntimeConfig(
        client={}, group_id="core", state_dir=root, topics=TOPICS, partitions=PARTITIONS
    )
    worker = Worker(config)
    for number in range(PARTITIONS):
        store = PartitionStore(root / f"partition-{number}", number)
        store.open()
        worker.stores[number] = store
    changelog = 0
    started = time.perf_counter()
    for first in range(0, len(messages) if process else 0, batch):
        _emits, offsets = worker._apply(messages[first : first + batch])  # type: ignore[arg-type]
        for partition, store in worker.stores.items():
            if partition in offsets:
                store.seal(offsets[partition])
                changelog += sum(1 for _ in store.changelog_changes()) + 1
                store.commit(changelog_position=changelog)
    seconds = time.perf_counter() - started
    for store in worker.stores.values():
        store.close()
    return seconds, changelog


def _once(
    scale: float, process: bool = True, workload: str = "match-heavy"
) -> tuple[float, int, int]:
    messages = WORKLOADS[workload](scale, 1_700_000_000_000)
    root = Path(tempfile.mkdtemp(prefix="waitline-core-"))
    try:
        # Batches shrink with the input, so a smaller run coalesces writes as the full one does.
        seconds, changelog = run(messages, root, max(1, int(BATCH * scale)), process)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return seconds, len(messages), changelog


def _instructions(scale: float, process: bool = True, workload: str = "match-heavy") -> int:
    """Instructions executed by a child run of this file at ``scale``, under callgrind; without
    ``process``, the run only sets up (imports, the input built, the stores opened and closed)."""
    with tempfile.TemporaryDirectory(prefix="waitline-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--scale", str(scale), "--repeat", "1", "--quiet",
            "--workload", workload, *([] if process else ["--setup-only"]),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
        if done.returncode != 0:
            raise SystemExit(f"callgrind run failed: {done.stderr.strip().splitlines()[-1:]}")
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise SystemExit("callgrind printed no instruction count")
        return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="core + state + RocksDB, no broker")
    parser.add_argument("--scale", type=float, default=1.0, help="input size factor")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is reported")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="match-heavy")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--setup-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.callgrind:
        if shutil.which("valgrind") is None:
            print("core.py: --callgrind needs valgrind (apt install valgrind)", file=sys.stderr)
            return 2
        total = _instructions(args.scale, workload=args.workload)
        setup = _instructions(args.scale, process=False, workload=args.workload)
        records = len(WORKLOADS[args.workload](args.scale, 0))
        print(f"{(total - setup) / records:,.0f} instructions per input record "
              f"({records:,} records, scale {args.scale})")  # fmt: skip
        return 0
    best = None
    for _ in range(args.repeat):
        seconds, records, changelog = _once(args.scale, not args.setup_only, args.workload)
        best = seconds if best is None else min(best, seconds)
        if not args.quiet:
            each = changelog / max(records, 1)
            print(f"{seconds * 1e6 / max(records, 1):.2f} µs per record "
                  f"({records:,} records, {each:.2f} changelog records each)")  # fmt: skip
    if not args.quiet and best is not None:
        print(f"best: {best * 1e6 / max(records, 1):.2f} µs per record")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
