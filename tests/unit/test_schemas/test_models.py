"""The wire models: camelCase on the wire, strict validation, and the wait-command union."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from waitline.schemas.models import (
    CancelWait,
    Event,
    ResumeCommand,
    TimerFired,
    WaitRegistration,
    parse_wait_command,
)

EVENT = {"eventId": "e", "name": "n", "correlationKey": "k"}
REG = {"waitId": "w", "runId": "r", "name": "n", "correlationKey": "k", "timeout": "1s"}


def test_event_is_camel_case_on_the_wire() -> None:
    event = Event(
        event_id="e",
        name="n",
        correlation_key="k",
        data={"a": 1},
        idempotency_key="i",
        ttl="1h",
        timestamp=5,
    )
    assert json.loads(event.to_json()) == {
        "eventId": "e",
        "name": "n",
        "correlationKey": "k",
        "data": {"a": 1},
        "idempotencyKey": "i",
        "ttl": "1h",
        "timestamp": 5,
    }


def test_event_leaves_absent_optionals_off_the_wire() -> None:
    assert json.loads(Event.model_validate(EVENT).to_json()) == {**EVENT, "data": {}}


def test_models_accept_wire_names_and_python_names() -> None:
    assert Event.model_validate(EVENT) == Event(event_id="e", name="n", correlation_key="k")


def test_registration_round_trips_with_every_field() -> None:
    body = {
        "type": "register",
        **REG,
        "onTimeout": "continue",
        "if": "async.data.ok",
        "context": {"data": {"x": 1}},
        "lookback": "0",
        "metadata": [1, "two"],
    }
    reg = WaitRegistration.model_validate(body)
    assert (reg.on_timeout, reg.if_, reg.lookback, reg.metadata) == (
        "continue",
        "async.data.ok",
        "0",
        [1, "two"],
    )
    assert json.loads(reg.to_json()) == body


def test_if_is_the_wire_name_of_the_filter() -> None:
    reg = WaitRegistration.model_validate({**REG, "if": "true"})
    assert reg.if_ == "true"
    wire = json.loads(reg.to_json())
    assert wire["if"] == "true" and "if_" not in wire
    assert (
        WaitRegistration(  # the Python name works too
            wait_id="w", run_id="r", name="n", correlation_key="k", timeout="1s", if_="true"
        )
        == reg
    )


def test_registration_defaults() -> None:
    reg = WaitRegistration.model_validate(REG)
    assert (reg.type, reg.on_timeout, reg.if_, reg.lookback) == ("register", "fail", None, None)


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (Event, {**EVENT, "extra": 1}, "extra"),
        (WaitRegistration, {**REG, "lookbak": "0"}, "lookbak"),
        (WaitRegistration, {**REG, "onTimout": "fail"}, "onTimout"),
        (
            CancelWait,
            {"type": "cancel", "waitId": "w", "name": "n", "correlationKey": "k", "runId": "r"},
            "runId",
        ),
    ],
)
def test_unknown_fields_are_rejected(model: Any, body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        model.model_validate(body)


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (Event, {**EVENT, "name": "a|b"}),
        (WaitRegistration, {**REG, "name": "a|b"}),
        (CancelWait, {"type": "cancel", "waitId": "w", "name": "a|b", "correlationKey": "k"}),
    ],
)
def test_separator_in_a_name_is_rejected(model: Any, body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="must not contain"):
        model.model_validate(body)


def test_separator_in_a_correlation_key_is_allowed() -> None:
    assert Event.model_validate({**EVENT, "correlationKey": "a|b"}).correlation_key == "a|b"


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (Event, {**EVENT, "ttl": "soon"}, "ttl"),
        (WaitRegistration, {**REG, "timeout": "5x"}, "timeout"),
        (WaitRegistration, {**REG, "timeout": "P1Y"}, "timeout"),
        (WaitRegistration, {**REG, "lookback": "-1s"}, "lookback"),
    ],
)
def test_bad_durations_are_rejected(model: Any, body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    assert info.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (Event, {**EVENT, "name": ""}, "name"),
        (Event, {**EVENT, "eventId": ""}, "eventId"),
        (Event, {**EVENT, "data": [1]}, "data"),
        (Event, {**EVENT, "timestamp": -1}, "timestamp"),
        (Event, {"name": "n", "correlationKey": "k"}, "eventId"),
        (WaitRegistration, {**REG, "onTimeout": "explode"}, "onTimeout"),
        (WaitRegistration, {**REG, "timeout": None}, "timeout"),
        (WaitRegistration, {k: v for k, v in REG.items() if k != "runId"}, "runId"),
    ],
)
def test_invalid_values_are_rejected(model: Any, body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    assert info.value.errors()[0]["loc"][0] == field


def test_models_are_frozen() -> None:
    event = Event.model_validate(EVENT)
    with pytest.raises(ValidationError):
        event.name = "other"  # type: ignore[misc]


def test_parse_wait_command_defaults_to_register() -> None:
    command = parse_wait_command(json.dumps(REG).encode())
    assert isinstance(command, WaitRegistration) and command.type == "register"
    assert isinstance(parse_wait_command({**REG, "type": "register"}), WaitRegistration)


def test_parse_wait_command_cancel_and_timer() -> None:
    base = {"waitId": "w", "name": "n", "correlationKey": "k"}
    cancel = parse_wait_command({**base, "type": "cancel"})
    assert isinstance(cancel, CancelWait) and cancel.wait_id == "w"
    timer = parse_wait_command(json.dumps({**base, "type": "timer", "deadline": 5}).encode())
    assert isinstance(timer, TimerFired) and timer.deadline == 5


@pytest.mark.parametrize(
    "body",
    [
        {"waitId": "w", "name": "n", "correlationKey": "k", "type": "explode"},
        {"waitId": "w", "name": "n", "correlationKey": "k", "type": "timer"},  # no deadline
        {"waitId": "w", "name": "n", "correlationKey": "k", "type": "cancel", "timeout": "1s"},
    ],
)
def test_parse_wait_command_rejects_bad_commands(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_wait_command(body)


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"register"', b"null", b"{not json"])
def test_parse_wait_command_wants_a_json_object(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_wait_command(raw)


def test_resume_keeps_nulls_on_the_wire() -> None:
    resume = ResumeCommand(
        resume_id="x",
        wait_id="w",
        run_id="r",
        outcome="timed_out",
        action="continue",
        registered_at=1,
        resolved_at=2,
    )
    wire = json.loads(resume.to_json())
    assert wire == {
        "resumeId": "x",
        "waitId": "w",
        "runId": "r",
        "outcome": "timed_out",
        "action": "continue",
        "event": None,
        "error": None,
        "metadata": None,
        "registeredAt": 1,
        "resolvedAt": 2,
    }
    assert ResumeCommand.model_validate_json(resume.to_json()) == resume


@pytest.mark.parametrize(("field", "value"), [("outcome", "won"), ("action", "retry")])
def test_resume_outcome_and_action_are_closed_sets(field: str, value: str) -> None:
    body = {
        "resumeId": "x",
        "waitId": "w",
        "runId": "r",
        "outcome": "matched",
        "action": "continue",
        "registeredAt": 1,
        "resolvedAt": 2,
        field: value,
    }
    with pytest.raises(ValidationError, match=field):
        ResumeCommand.model_validate(body)
