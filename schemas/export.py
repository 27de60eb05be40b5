"""Export the wire models' JSON Schema files into ``schemas/``.

Run ``python -m schemas.export`` after changing a model;
``tests/unit/test_schemas/test_schema_files.py`` fails while the files in the repository differ
from what the models produce.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from waitline.schemas.models import CancelWait, Event, ResumeCommand, WaitCommand, WaitRegistration

__all__ = ["SCHEMA_DIR", "render_all", "write_all"]

SCHEMA_DIR = Path(__file__).resolve().parent

_MODELS: dict[str, type[BaseModel]] = {
    "event.schema.json": Event,
    "wait-registration.schema.json": WaitRegistration,
    "cancel-wait.schema.json": CancelWait,
    "resume-command.schema.json": ResumeCommand,
}


def _render(schema: dict[str, Any], title: str) -> str:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": title, **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def render_all() -> dict[str, str]:
    """File name → JSON Schema text, for every wire model."""
    files = {
        name: _render(model.model_json_schema(by_alias=True, mode="validation"), name)
        for name, model in _MODELS.items()
    }
    command: TypeAdapter[Any] = TypeAdapter(WaitCommand)
    files["wait-command.schema.json"] = _render(
        command.json_schema(by_alias=True, mode="validation"), "wait-command.schema.json"
    )
    return files


def write_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file; return the paths written."""
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all():
        print(path, file=sys.stdout)
