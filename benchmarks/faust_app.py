"""The peer: waitline's correlation rules as an idiomatic faust-streaming app.

Buffered events, matching, fan-out and idempotency-key dedup, in RocksDB tables (rocksdict
driver), as a user of the design card's packages would write it. Timeouts, lookback, TTLs and
`if` filters are left out (Faust has no per-record timer; an app-wide `App.timer` scanning a
table is the usual workaround). Run by ``make bench`` (benchmarks/bench/contenders.py):

    faust -A benchmarks.faust_app worker -l warning

Configuration comes from the environment: BENCH_BOOTSTRAP, BENCH_PREFIX, BENCH_APP_ID,
BENCH_DATADIR.
"""

from __future__ import annotations

import json
import os
from typing import Any

import faust

PREFIX = os.environ.get("BENCH_PREFIX", "")
app = faust.App(
    os.environ.get("BENCH_APP_ID", "waitline-faust-bench"),
    broker=f"kafka://{os.environ.get('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
    store="rocksdb://",
    datadir=os.environ.get("BENCH_DATADIR", "/tmp/faust-bench"),
    topic_partitions=8,
    consumer_auto_offset_reset="earliest",
    topic_allow_declare=True,
    web_enabled=False,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
)

raw: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}
events_topic = app.topic(f"{PREFIX}events", **raw)
waits_topic = app.topic(f"{PREFIX}wait-commands", **raw)
resumes_topic = app.topic(f"{PREFIX}resumes", **raw)

pending = app.Table("pending", default=list, partitions=8, key_type=bytes)
buffered = app.Table("buffered", default=list, partitions=8, key_type=bytes)
seen = app.Table("dedup", default=bool, partitions=8, key_type=bytes)


def _resume(wait: dict[str, Any], event: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "waitId": wait["waitId"],
            "runId": wait["runId"],
            "outcome": "matched",
            "action": "continue",
            "event": event,
        }
    ).encode()


@app.agent(waits_topic)
async def on_wait(stream: Any) -> None:
    async for pair, value in stream.items():
        wait = json.loads(value)
        events = buffered[pair]
        if events:
            await resumes_topic.send(key=wait["runId"].encode(), value=_resume(wait, events[0]))
        else:
            pending[pair] = [*pending[pair], wait]


@app.agent(events_topic)
async def on_event(stream: Any) -> None:
    async for pair, value in stream.items():
        event = json.loads(value)
        idem = event.get("idempotencyKey")
        if idem is not None:
            dedup_key = f"{event['name']}\0{idem}".encode()
            if seen[dedup_key]:
                continue
            seen[dedup_key] = True
        waits = pending[pair]
        for wait in waits:
            await resumes_topic.send(key=wait["runId"].encode(), value=_resume(wait, event))
        if waits:
            pending[pair] = []
        buffered[pair] = [*buffered[pair], event]
