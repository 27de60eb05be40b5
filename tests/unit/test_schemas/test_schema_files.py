"""The JSON Schema files in schemas/ are exactly what the models export (no drift)."""

from __future__ import annotations

import json

import pytest

from waitline.schemas.export import SCHEMA_DIR, render_all

RENDERED = render_all()


def test_every_wire_model_has_a_schema_file() -> None:
    assert set(RENDERED) == {
        "event.schema.json",
        "wait-registration.schema.json",
        "cancel-wait.schema.json",
        "resume-command.schema.json",
        "wait-command.schema.json",
    }


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_schema_file_matches_the_model(name: str) -> None:
    path = SCHEMA_DIR / name
    assert path.exists(), f"schemas/{name} is missing: run `python -m schemas.export`"
    assert path.read_text(encoding="utf-8") == RENDERED[name], (
        f"schemas/{name} is out of date with the models: run `python -m schemas.export`"
    )


def test_no_stale_schema_files() -> None:
    on_disk = {p.name for p in SCHEMA_DIR.glob("*.schema.json")}
    assert on_disk == set(RENDERED), (
        f"schema files no model exports: {sorted(on_disk - set(RENDERED))}; delete them"
    )


def test_exported_schemas_use_the_wire_names() -> None:
    event = json.loads(RENDERED["event.schema.json"])
    assert set(event["required"]) == {"eventId", "name", "correlationKey"}
    assert event["additionalProperties"] is False
    reg = json.loads(RENDERED["wait-registration.schema.json"])
    assert {"waitId", "runId", "if", "onTimeout", "lookback", "metadata"} <= set(reg["properties"])
    assert "if_" not in reg["properties"]
    command = json.loads(RENDERED["wait-command.schema.json"])
    assert command["discriminator"]["propertyName"] == "type"
