"""Look inside the workers' state: pending waits and buffered events, read-only.

Reads the RocksDB stores under ``<state_dir>/<group_id>/partition-N`` as of now, beside a
worker that is writing them, and writes nothing into them (``processors.store.open_snapshot``).
Only the stores on this machine are visible: with several workers, run it where each one keeps
its state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waitline.processors.store import OFFSETS_NAME, open_snapshot, partition_stores

__all__ = ["StateSummary", "buffered_events", "pending_waits", "store_paths", "summary"]


def store_paths(state_dir: Path, group_id: str) -> list[tuple[int, Path]]:
    """``(partition, path)`` of every store of the group, by partition."""
    return partition_stores(state_dir / group_id)


def pending_waits(
    state_dir: Path, group_id: str, name: str | None = None, key: str | None = None
) -> Iterator[dict[str, Any]]:
    for partition, path in store_paths(state_dir, group_id):
        state, db = open_snapshot(path)
        try:
            for wait in state.iter_waits():
                wait_name, _, wait_key = wait.pair.decode().partition("|")
                if (name is None or wait_name == name) and (key is None or wait_key == key):
                    yield {
                        "partition": partition,
                        "waitId": wait.wait_id,
                        "runId": wait.run_id,
                        "name": wait_name,
                        "correlationKey": wait_key,
                        "registeredAt": wait.registered_at,
                        "deadline": wait.deadline,
                        "onTimeout": wait.on_timeout,
                        "if": wait.filter,
                    }
        finally:
            db.close()


def buffered_events(
    state_dir: Path, group_id: str, name: str | None = None, key: str | None = None
) -> Iterator[dict[str, Any]]:
    for partition, path in store_paths(state_dir, group_id):
        state, db = open_snapshot(path)
        try:
            for pair, event in state.iter_buffered():
                event_name, _, event_key = pair.decode().partition("|")
                if (name is None or event_name == name) and (key is None or event_key == key):
                    body = state.event_body(pair, event)
                    wire = json.loads(body) if body is not None else None
                    if wire is not None:  # stored as received: its own timestamp, else its record's
                        wire.setdefault("timestamp", event.record_time)
                    yield {"partition": partition, "expiresAt": event.expires_at, "event": wire}
        finally:
            db.close()


@dataclass(frozen=True)
class StateSummary:
    partition: int
    pending_waits: int
    buffered_events: int
    offsets: dict[str, int]


def summary(state_dir: Path, group_id: str) -> list[StateSummary]:
    out = []
    for partition, path in store_paths(state_dir, group_id):
        state, db = open_snapshot(path)
        try:
            raw = state.get_meta(OFFSETS_NAME)
            out.append(
                StateSummary(
                    partition,
                    sum(1 for _ in state.iter_waits()),
                    sum(1 for _ in state.iter_buffered()),
                    json.loads(raw) if raw else {},
                )
            )
        finally:
            db.close()
    return out
