"""Every public name of the SDK has a docstring: what ``waitline``, ``waitline.aio`` and
``waitline.faust`` export, and the public methods and properties of each exported class."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

MODULES = ["waitline", "waitline.aio", "waitline.faust", "waitline.resumes", "waitline.kafka"]


def _public_names() -> list[str]:
    names = []
    for module_name in MODULES:
        if module_name == "waitline.faust":
            pytest.importorskip("faust", reason="the faust extra is not installed")
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            names.append(f"{module_name}.{name}")
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_") and attr not in ("__aenter__", "__enter__"):
                        continue
                    if inspect.isfunction(value) or isinstance(value, property):
                        names.append(f"{module_name}.{name}.{attr}")
    return names


def _resolve(path: str) -> object:
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            obj = inspect.getattr_static(obj, part)
        return obj
    raise AssertionError(path)


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for path in _public_names():
        obj = _resolve(path)
        if isinstance(obj, property):
            obj = obj.fget
        doc = getattr(obj, "__doc__", None)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # a constant or type alias: documented where it is defined
        if not doc or not doc.strip():
            missing.append(path)
    assert missing == [], "\n".join(missing)


def test_the_api_page_names_every_public_name() -> None:
    page = (Path(__file__).resolve().parents[3] / "docs" / "sdk.md").read_text()
    missing = [
        path
        for path in _public_names()
        if not path.rsplit(".", 1)[1].startswith("__") and f"`{path.rsplit('.', 1)[1]}" not in page
    ]
    assert missing == [], "docs/sdk.md does not name:\n" + "\n".join(missing)
