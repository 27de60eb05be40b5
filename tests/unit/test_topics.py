"""topics.yaml loading: the single source of truth for topic names, partitions and configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from waitline.errors import ConfigError
from waitline.topics import ROLES, load_topics

REPO = Path(__file__).resolve().parents[2]


def test_repository_topics_file_loads_with_prefix() -> None:
    topics = load_topics(REPO / "topics.yaml", "dev.")
    assert [topics.by_role(r).name for r in ROLES] == [
        "dev.events",
        "dev.wait-commands",
        "dev.resumes",
        "dev.changelog",
        "dev.dead-letters",
    ]
    assert topics.events.partitions == topics.wait_commands.partitions
    assert topics.events.config["retention.ms"] == "604800000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("topics: [", "not valid YAML"),
        ("nothing: here", "top-level 'topics:'"),
        ("topics:\n  events: {name: e, partitions: 1}", "wait-commands"),
        (
            "topics:\n" + "".join(f"  {r}: {{name: x, partitions: 0}}\n" for r in ROLES),
            "greater than 0",
        ),
    ],
)
def test_bad_topics_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_topics(path)


def test_missing_topics_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_topics(tmp_path / "nope.yaml")
