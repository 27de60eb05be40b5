"""Drive the pure core without Kafka: build input records, collect what it emits."""

from __future__ import annotations

import json
from typing import Any

from waitline.processors.correlation import (
    CoreSettings,
    Correlator,
    Emit,
    InputRecord,
    Source,
    Target,
)
from waitline.processors.state import PartitionState
from waitline.schemas.keys import make_key


class Core:
    """A correlator, a state and an offset counter: feed it records, read what it emits."""

    def __init__(self, state: PartitionState, settings: CoreSettings | None = None) -> None:
        self.state = state
        self.core = Correlator(settings or CoreSettings())
        self.offset = 0

    def _record(self, source: Source, body: Any, ts: int, key: bytes | None) -> InputRecord:
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        if key is None and isinstance(body, dict):
            key = make_key(body["name"], body["correlationKey"])
        self.offset += 1
        return InputRecord(source, key, value, ts, 0, self.offset)

    def event(self, name: str, key: str, ts: int, **fields: Any) -> list[Emit]:
        body = {
            "eventId": fields.pop("eventId", f"e{self.offset + 1}"),
            "name": name,
            "correlationKey": key,
            **fields,
        }
        return self.core.process(self.state, self._record(Source.EVENTS, body, ts, None))

    def register(self, wait_id: str, name: str, key: str, ts: int, **fields: Any) -> list[Emit]:
        body = {
            "waitId": wait_id,
            "runId": fields.pop("runId", f"run-{wait_id}"),
            "name": name,
            "correlationKey": key,
            "timeout": fields.pop("timeout", "1h"),
            **fields,
        }
        return self.core.process(self.state, self._record(Source.WAIT_COMMANDS, body, ts, None))

    def cancel(self, wait_id: str, name: str, key: str, ts: int) -> list[Emit]:
        body = {"type": "cancel", "waitId": wait_id, "name": name, "correlationKey": key}
        return self.core.process(self.state, self._record(Source.WAIT_COMMANDS, body, ts, None))

    def raw(self, source: Source, value: bytes, ts: int, key: bytes | None) -> list[Emit]:
        return self.core.process(self.state, self._record(source, value, ts, key))

    def fire_timers(self, now: int) -> list[Emit]:
        """Ask for due timers at wall-clock ``now`` and process them at record time ``now``."""
        out: list[Emit] = []
        for timer in self.core.due_timers(self.state, now, 0, 10_000):
            assert timer.target is Target.WAIT_COMMANDS and timer.value is not None
            out.extend(self.raw(Source.WAIT_COMMANDS, timer.value, now, timer.key))
        return out


def resumes(emits: list[Emit]) -> list[dict[str, Any]]:
    return [json.loads(e.value or b"") for e in emits if e.target is Target.RESUMES]


def dead_letters(emits: list[Emit]) -> list[Emit]:
    return [e for e in emits if e.target is Target.DEAD_LETTERS]
