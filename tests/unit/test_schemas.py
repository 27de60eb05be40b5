"""The wire contract: models, keys, durations, and the exported JSON Schema files."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemas import (
    CancelWait,
    Event,
    ResumeCommand,
    TimerFired,
    WaitRegistration,
    format_duration,
    make_key,
    parse_duration,
    parse_wait_command,
    partition_for,
    split_key,
)
from schemas.durations import DurationError
from schemas.export import SCHEMA_DIR, render_all
from schemas.keys import murmur2


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("500ms", 500),
        ("30s", 30_000),
        ("15m", 900_000),
        ("24h", 86_400_000),
        ("3d", 259_200_000),
        ("1w", 604_800_000),
        ("1h30m", 5_400_000),
        ("1.5s", 1500),
        ("PT30S", 30_000),
        ("P3D", 259_200_000),
        ("P1DT12H", 129_600_000),
        ("PT0.5S", 500),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "5x", "s", "30 s", "-1s", "P1Y", "P2M", "PT", "P", "1s2"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for ms in (0, 1, 999, 1000, 90_000, 86_400_000 + 1):
        assert parse_duration(format_duration(ms)) == ms


def test_key_round_trip_and_separator() -> None:
    key = make_key("email.verified", "user:1|x")
    assert key == b"email.verified|user:1|x"
    assert split_key(key) == ("email.verified", "user:1|x")
    with pytest.raises(ValueError, match="no '\\|'"):
        split_key(b"nokey")


def test_murmur2_matches_the_java_client() -> None:
    # Test vectors of org.apache.kafka.common.utils.UtilsTest#testMurmur2.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert all(0 <= partition_for(f"k{i}".encode(), 8) < 8 for i in range(100))


def test_models_use_camel_case_on_the_wire() -> None:
    event = Event(event_id="e", name="n", correlation_key="k", idempotency_key="i")
    assert json.loads(event.to_json()) == {
        "eventId": "e",
        "name": "n",
        "correlationKey": "k",
        "data": {},
        "idempotencyKey": "i",
    }
    reg = WaitRegistration.model_validate(
        {
            "waitId": "w",
            "runId": "r",
            "name": "n",
            "correlationKey": "k",
            "timeout": "1s",
            "if": "true",
        }
    )
    assert reg.if_ == "true" and json.loads(reg.to_json())["if"] == "true"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"eventId": "e", "name": "a|b", "correlationKey": "k"}, "name"),
        ({"eventId": "e", "name": "n", "correlationKey": "k", "ttl": "soon"}, "ttl"),
        ({"eventId": "e", "name": "n", "correlationKey": "k", "extra": 1}, "extra"),
        ({"eventId": "e", "name": "", "correlationKey": "k"}, "name"),
        ({"eventId": "e", "name": "n", "correlationKey": "k", "data": [1]}, "data"),
    ],
)
def test_invalid_events(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Event.model_validate(body)
    assert field in str(info.value)


def test_misspelt_registration_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="lookbak"):
        parse_wait_command(
            b'{"waitId":"w","runId":"r","name":"n","correlationKey":"k","timeout":"1s",'
            b'"lookbak":"0"}'
        )


def test_wait_commands_by_type() -> None:
    base = {"waitId": "w", "name": "n", "correlationKey": "k"}
    assert isinstance(parse_wait_command({**base, "runId": "r", "timeout": "1s"}), WaitRegistration)
    assert isinstance(parse_wait_command({**base, "type": "cancel"}), CancelWait)
    assert isinstance(parse_wait_command({**base, "type": "timer", "deadline": 5}), TimerFired)
    with pytest.raises(ValidationError):
        parse_wait_command({**base, "type": "explode"})
    with pytest.raises(ValueError, match="JSON object"):
        parse_wait_command(b"[1, 2]")


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
    assert wire["event"] is None and wire["metadata"] is None
    assert ResumeCommand.model_validate_json(resume.to_json()) == resume


def test_schema_files_match_the_models() -> None:
    for name, text in render_all().items():
        path = SCHEMA_DIR / name
        assert path.exists(), f"{name} missing: run `python -m schemas.export`"
        assert path.read_text(encoding="utf-8") == text, (
            f"schemas/{name} is out of date with the models: run `python -m schemas.export`"
        )


def test_exported_schemas_describe_the_wire_names() -> None:
    event = json.loads((SCHEMA_DIR / "event.schema.json").read_text())
    assert set(event["required"]) == {"eventId", "name", "correlationKey"}
    assert event["additionalProperties"] is False
    reg = json.loads((SCHEMA_DIR / "wait-registration.schema.json").read_text())
    assert {"if", "onTimeout", "lookback", "waitId"} <= set(reg["properties"])
