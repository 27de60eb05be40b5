"""The code under ``benchmarks/`` (scripts, and the ``bench`` package), loaded for unit tests."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` as module ``NAME`` (registered in ``sys.modules``, where
    dataclasses look their module up), or with a dot a module of the ``bench`` package
    (``bench.cli``), imported as the scripts under ``benchmarks/`` import it."""
    if "." in name:
        if str(BENCHMARKS) not in sys.path:
            sys.path.insert(0, str(BENCHMARKS))
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
