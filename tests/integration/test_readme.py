"""The README's scenarios run as written, against a live worker."""

from __future__ import annotations

import re

import pytest
from harness import REPO, Stack

pytestmark = pytest.mark.integration

_SCENARIO = re.compile(r"<!-- scenario: (?P<name>[\w-]+) -->\s*```python\n(?P<code>.*?)```", re.S)


def _scenarios() -> dict[str, str]:
    return {m["name"]: m["code"] for m in _SCENARIO.finditer((REPO / "README.md").read_text())}


def test_readme_has_the_two_scenarios() -> None:
    assert set(_scenarios()) == {"email-verification", "onboarding-drip"}


@pytest.mark.parametrize("name", ["email-verification", "onboarding-drip"])
def test_readme_scenario_runs(
    live_stack: Stack, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    for key, value in live_stack.env.items():
        if key.startswith("WAITLINE_"):
            monkeypatch.setenv(key, value)
    namespace: dict[str, object] = {"__name__": f"readme_{name.replace('-', '_')}"}
    exec(compile(_scenarios()[name], f"README.md:{name}", "exec"), namespace)


def test_every_python_block_of_the_readme_compiles() -> None:
    """The blocks that run forever (the runners) are not run, but they must be Python."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert len(blocks) >= 4
    for i, code in enumerate(blocks):
        compile(code, f"README.md:python-block-{i}", "exec")
