"""topics.yaml loading: the single source of truth for topic names, partitions and configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from waitline.errors import ConfigError, WaitlineError
from waitline.processors.limits import producer_max_bytes
from waitline.topics import ROLES, check_record_limits, load_topics

REPO = Path(__file__).resolve().parents[3]
VALID = "topics:\n" + "".join(
    f"  {role}: {{name: {role}-t, partitions: 3, config: {{retention.ms: 1000}}}}\n"
    for role in ROLES
)


def test_repository_topics_file_loads_with_prefix() -> None:
    topics = load_topics(REPO / "topics.yaml", "dev.")
    assert [topics.by_role(r).name for r in ROLES] == [
        "dev.events",
        "dev.wait-commands",
        "dev.resumes",
        "dev.changelog",
        "dev.dead-letters",
    ]
    assert [t.name for t in topics.all()] == [topics.by_role(r).name for r in ROLES]
    assert (
        topics.events.partitions == topics.wait_commands.partitions == topics.changelog.partitions
    )
    assert topics.events.config["retention.ms"] == "604800000"
    assert topics.changelog.config["cleanup.policy"] == "compact"


def test_no_prefix_by_default(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(VALID)
    topics = load_topics(path)
    assert topics.events.name == "events-t" and topics.events.partitions == 3
    assert topics.events.config == {"retention.ms": "1000"}  # values become strings
    assert topics.events.replication_factor == -1  # the broker's default


def test_name_defaults_to_the_role(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text("topics:\n" + "".join(f"  {r}: {{partitions: 1}}\n" for r in ROLES))
    assert load_topics(path, "p.").dead_letters.name == "p.dead-letters"


def test_topics_are_frozen(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(VALID)
    topics = load_topics(path)
    with pytest.raises(ValueError):
        topics.events.partitions = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("topics: [", "not valid YAML"),
        ("", "top-level 'topics:'"),
        ("nothing: here", "top-level 'topics:'"),
        ("topics: [events]", "top-level 'topics:'"),
        ("topics:\n  events: {name: e, partitions: 1}", "topics.wait-commands: Field required"),
        (VALID.replace("partitions: 3", "partitions: 0", 1), "greater than 0"),
        (VALID + "  event: {name: typo, partitions: 1}\n", "topics.event"),
        (VALID.replace("partitions: 3", "partitions: many", 1), "topics.events.partitions"),
        (VALID.replace("{name: events-t,", "{name: events-t, partitons: 2,", 1), "partitons"),
    ],
)
def test_bad_topics_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_topics(path)
    assert str(path) in str(info.value)  # the message names the file


def test_missing_topics_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="topics file not found") as info:
        load_topics(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)
    assert isinstance(info.value, WaitlineError)


def test_the_repository_topics_take_the_largest_record_waitline_writes() -> None:
    topics = load_topics(REPO / "topics.yaml")
    check_record_limits(topics, 1_048_576)  # the default record limit: no error
    for spec in topics.all():
        assert int(spec.config["max.message.bytes"]) >= producer_max_bytes(1_048_576)
    assert topics.events.config["message.timestamp.type"] == "LogAppendTime"
    assert topics.wait_commands.config["message.timestamp.type"] == "LogAppendTime"


def test_a_record_limit_the_topics_cannot_take_is_one_clear_error() -> None:
    topics = load_topics(REPO / "topics.yaml")
    expected = r"max\.message\.bytes is 2097152 .* \(WAITLINE_MAX_RECORD_BYTES\)"
    with pytest.raises(ConfigError, match=expected):
        check_record_limits(topics, 4_000_000)
