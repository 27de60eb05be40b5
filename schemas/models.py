"""The wire models: what producers, runners and the processor exchange over Kafka.

Field names are camelCase on the wire (JSON, UTF-8). Times are integer epoch milliseconds (UTC);
durations are text (see :mod:`schemas.durations`). Every model is frozen and forbids unknown
fields, so a misspelt ``lookback`` or ``onTimeout`` is rejected instead of silently ignored.

The wait-commands topic carries three kinds of record, told apart by ``type``:
``register`` (the default when ``type`` is absent), ``cancel`` and ``timer`` (written by the
processor itself when a deadline passes).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from waitline.schemas.durations import DurationError, parse_duration
from waitline.schemas.keys import KEY_SEPARATOR

__all__ = [
    "Action",
    "CancelWait",
    "Event",
    "OnTimeout",
    "Outcome",
    "ResumeCommand",
    "TimerFired",
    "WaitCommand",
    "WaitRegistration",
    "parse_wait_command",
]

OnTimeout = Literal["fail", "continue", "cancel"]
Outcome = Literal["matched", "timed_out", "cancelled", "rejected"]
Action = Literal["continue", "fail", "cancel"]


def _check_name(value: str) -> str:
    if KEY_SEPARATOR in value:
        raise ValueError(f"must not contain {KEY_SEPARATOR!r} (it separates name and key)")
    return value


def _check_duration(value: str) -> str:
    try:
        parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    return value


Name = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_check_name)]
CorrelationKey = Annotated[str, Field(min_length=1, max_length=1024)]
Identifier = Annotated[str, Field(min_length=1, max_length=512)]
Duration = Annotated[
    str,
    Field(examples=["500ms", "30s", "24h", "3d", "PT30S"], max_length=64),
    AfterValidator(_check_duration),
]
# Up to the end of year 9999: a deadline or expiry computed from it still fits the 8-byte keys.
MAX_EPOCH_MS = 253_402_300_799_999
EpochMillis = Annotated[int, Field(ge=0, le=MAX_EPOCH_MS, description="epoch milliseconds, UTC")]


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        ser_json_inf_nan="null",
    )

    def to_json(self) -> bytes:
        """Compact wire JSON (camelCase, ``None`` fields left out)."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class Event(_Wire):
    """Something that happened, published to the ``events`` topic by any producer."""

    event_id: Identifier = Field(description="unique id of this event, chosen by the producer")
    name: Name
    correlation_key: CorrelationKey
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: Identifier | None = Field(
        default=None,
        description="a second event with the same name and key inside the dedup window is dropped",
    )
    ttl: Duration | None = Field(
        default=None,
        description=(
            "how long after its Kafka record time the event stays available to waits that "
            "register later"
        ),
    )
    timestamp: EpochMillis | None = Field(
        default=None,
        description=(
            "when it happened, as data: resumes carry it and `if` reads it (the Kafka record "
            "time if absent); lookback, ttl and timeouts count from the record time, never this"
        ),
    )


class WaitRegistration(_Wire):
    """A run asks to be resumed by the first matching event (``type`` ``register``)."""

    type: Literal["register"] = "register"
    wait_id: Identifier = Field(
        description="unique, chosen by the runner, e.g. run-42/verify-email"
    )
    run_id: Identifier
    name: Name
    correlation_key: CorrelationKey
    timeout: Duration
    on_timeout: OnTimeout = "fail"
    if_: str | None = Field(
        default=None,
        alias="if",
        max_length=4096,
        description="CEL: `async` is the candidate event, `event` the registration's context",
    )
    context: dict[str, Any] | None = None
    lookback: Duration | None = Field(
        default=None,
        description=(
            "only events whose Kafka record time is at or after the registration's record time "
            'minus this count ("0": only events appended at or after the registration); an '
            "event's own `timestamp` never decides"
        ),
    )
    metadata: Any | None = Field(default=None, description="opaque JSON handed back in the resume")


class CancelWait(_Wire):
    """Cancel a pending wait (``type`` ``cancel``); a no-op if it already resolved."""

    type: Literal["cancel"]
    wait_id: Identifier
    name: Name
    correlation_key: CorrelationKey


class TimerFired(_Wire):
    """Written by the processor when a wait's deadline passed (``type`` ``timer``)."""

    type: Literal["timer"]
    wait_id: Identifier
    name: Name
    correlation_key: CorrelationKey
    deadline: EpochMillis


class ResumeCommand(_Wire):
    """How a wait resolved; published to ``resumes`` keyed by ``runId``."""

    resume_id: str = Field(description="deterministic: the same wait always yields the same id")
    wait_id: str
    run_id: str
    outcome: Outcome
    action: Action
    event: Event | None = None
    error: str | None = None
    metadata: Any | None = None
    registered_at: EpochMillis
    resolved_at: EpochMillis

    def to_json(self) -> bytes:
        """Compact wire JSON (camelCase); ``event``, ``error`` and ``metadata`` stay on the wire
        as null, as runners read them unconditionally."""
        return self.model_dump_json(by_alias=True, exclude_none=False).encode()


WaitCommand = Annotated[WaitRegistration | CancelWait | TimerFired, Field(discriminator="type")]
_WAIT_COMMAND: TypeAdapter[WaitRegistration | CancelWait | TimerFired] = TypeAdapter(WaitCommand)
# Called directly, without ``model_validate_json``'s keyword defaults (processors.correlation).
_validate_registration = WaitRegistration.__pydantic_validator__.validate_json


def parse_wait_command(raw: bytes | dict[str, Any]) -> WaitRegistration | CancelWait | TimerFired:
    """Parse a wait-commands record; a body without ``type`` is a registration."""
    if isinstance(raw, bytes) and raw[:1] == b"{":
        # The common cases, parsed and validated in one step: a registration without ``type``,
        # and a record whose top-level ``type`` picks the model (cancel, timer). Anything else
        # (say, a registration without ``type`` whose context has "type" keys) is decided below.
        if b'"type"' not in raw:
            registration: WaitRegistration = _validate_registration(raw)
            return registration
        try:
            return _WAIT_COMMAND.validate_json(raw)
        except ValidationError:
            pass
    body = raw if isinstance(raw, dict) else _loads_object(raw)
    if "type" not in body:
        return WaitRegistration.model_validate(body)
    return _WAIT_COMMAND.validate_python(body)


def _loads_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError("a wait command must be a JSON object")
    return value
