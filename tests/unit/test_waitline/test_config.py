"""Settings: environment, precedence, secrets kept out of reprs, librdkafka pass-through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from waitline.config import Settings, default_topics_file
from waitline.worker import child_settings


def test_defaults() -> None:
    settings = Settings()
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.guarantee == "at_least_once"
    assert (settings.ms("event_ttl"), settings.ms("dedup_window")) == (86_400_000, 86_400_000)
    assert settings.ms("tombstone_retention") == 7 * 86_400_000


def test_settings_pass_secrets_to_librdkafka_only() -> None:
    settings = Settings(
        bootstrap_servers="b:9092",
        kafka={"security.protocol": "SASL_SSL"},
        sasl_password="hunter2",  # type: ignore[arg-type]
        ssl_key_password="s3cret",  # type: ignore[arg-type]
    )
    assert settings.as_librdkafka_dict() == {
        "bootstrap.servers": "b:9092",
        "security.protocol": "SASL_SSL",
        "sasl.password": "hunter2",
        "ssl.key.password": "s3cret",
    }
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "hunter2" not in text and "s3cret" not in text


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAITLINE_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("WAITLINE_KAFKA", '{"client.id": "x"}')
    monkeypatch.setenv("WAITLINE_EVENT_TTL", "3d")
    monkeypatch.setenv("WAITLINE_TOPIC_PREFIX", "staging.")
    settings = Settings()
    assert settings.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.kafka == {"client.id": "x"}
    assert settings.ms("event_ttl") == 3 * 86_400_000
    assert settings.topic_prefix == "staging."


def test_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAITLINE_BOOTSTRAP_SERVERS", "env:9092")
    assert Settings(bootstrap_servers="flag:9092").bootstrap_servers == "flag:9092"


@pytest.mark.parametrize(
    "field", ["WAITLINE_EVENT_TTL", "WAITLINE_DEDUP_WINDOW", "WAITLINE_TOMBSTONE_RETENTION"]
)
def test_bad_durations_are_refused(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    monkeypatch.setenv(field, "forever")
    with pytest.raises(ValidationError, match="bad duration"):
        Settings()


def test_bad_guarantee_is_refused() -> None:
    with pytest.raises(ValidationError, match="guarantee"):
        Settings(guarantee="maybe_once")  # type: ignore[arg-type]


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.bootstrap_servers = "elsewhere:9092"  # type: ignore[misc]


def test_default_topics_file_prefers_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shipped = default_topics_file()
    assert shipped.is_absolute() and shipped.name == "topics.yaml" and shipped.exists()
    (tmp_path / "topics.yaml").write_text("topics: {}\n")
    assert default_topics_file() == Path("topics.yaml")


def test_worker_processes_get_settings_of_their_own() -> None:
    parent = Settings(processes=3, metrics_port=9400, transactional_id="wl", group_id="g")
    children = [child_settings(parent, index) for index in range(3)]
    assert [c.processes for c in children] == [1, 1, 1]
    assert [c.metrics_port for c in children] == [9400, 9401, 9402]
    # Exactly-once ids belong to partitions (<prefix>-<partition>): one prefix for the group.
    assert [c.transactional_id for c in children] == ["wl", "wl", "wl"]
    assert {c.group_id for c in children} == {"g"}  # one group: they share the partitions
    plain = child_settings(Settings(processes=2), 1)
    assert (plain.metrics_port, plain.transactional_id) == (None, None)


@pytest.mark.parametrize("processes", [0, -1, 65])
def test_processes_out_of_range_are_refused(processes: int) -> None:
    with pytest.raises(ValidationError, match="processes"):
        Settings(processes=processes)


# -- secrets passed through WAITLINE_KAFKA -------------------------------------------------------

SECRET_ENTRIES = {
    "sasl.password": "pw-sasl",
    "ssl.key.pem": "-----BEGIN PRIVATE KEY-----pem-body",
    "ssl.key.password": "pw-key",
    "ssl.keystore.password": "pw-keystore",
    "sasl.oauthbearer.client.secret": "oauth-secret",
    "sasl.oauthbearer.config": "principal=p clientSecret=oauth-config",
    "sasl.oauthbearer.assertion.private.key.passphrase": "pass-phrase",
    "sasl.jaas.config": "jaas-with-password",
    "x.token": "tok-123",
    "x.credentials": "cred-456",
}


def _assert_no_secret(text: str) -> None:
    for value in SECRET_ENTRIES.values():
        assert value not in text, text


def test_secrets_in_kafka_settings_stay_out_of_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAITLINE_KAFKA", json.dumps({"client.id": "me", **SECRET_ENTRIES}))
    monkeypatch.setenv("WAITLINE_SASL_PASSWORD", "pw-sasl")
    settings = Settings()
    for text in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(settings.kafka),
    ):
        _assert_no_secret(text)
    assert "client.id" in repr(settings) and "me" in repr(settings)  # the rest stays readable
    # ... and librdkafka gets every entry as it was given.
    assert settings.as_librdkafka_dict() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "client.id": "me",
        **SECRET_ENTRIES,
    }


def test_secrets_stay_out_of_validation_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAITLINE_KAFKA", json.dumps({**SECRET_ENTRIES, "linger.ms": {"a": 1}}))
    with pytest.raises(ValidationError) as caught:
        Settings()
    _assert_no_secret(str(caught.value))
    _assert_no_secret(repr(caught.value))
    with pytest.raises(ValidationError) as caught:
        Settings(kafka=list(SECRET_ENTRIES.items()))  # type: ignore[arg-type]
    _assert_no_secret(str(caught.value))
    with pytest.raises(ValidationError) as caught:
        Settings(sasl_password=86421357)  # type: ignore[arg-type]
    assert "86421357" not in str(caught.value)


def test_kafka_settings_take_scalars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAITLINE_KAFKA", '{"linger.ms": 20, "enable.idempotence": true, "x": 1.5}')
    assert Settings().as_librdkafka_dict() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "linger.ms": "20",
        "enable.idempotence": "true",
        "x": "1.5",
    }


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('"x"', "must be a JSON object"),
        ('{"a": {"b": 1}}', "'a' must be a string, number or boolean"),
        ('{"a": null}', "'a' must be a string, number or boolean"),
        ('{"a": [1]}', "'a' must be a string, number or boolean"),
    ],
)
def test_malformed_kafka_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("WAITLINE_KAFKA", value)
    with pytest.raises(ValidationError, match=says) as caught:
        Settings()
    assert [error["loc"] for error in caught.value.errors()] == [("kafka",)]


@pytest.mark.parametrize(("port", "processes"), [(0, 1), (65536, 1), (65535, 2)])
def test_metrics_ports_must_be_ports(port: int, processes: int) -> None:
    with pytest.raises(ValidationError, match="metrics"):
        Settings(metrics_port=port, processes=processes)
    assert Settings(metrics_port=65534, processes=2).metrics_port == 65534


def test_the_group_follows_the_topic_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """A prefix isolates the consumer group (so the state directory and the transactional ids
    named after it) as it isolates the topics, unless a group is named."""
    assert Settings().group_id == "waitline"
    assert Settings(topic_prefix="staging.").group_id == "staging.waitline"
    assert Settings(topic_prefix="staging.", group_id="g").group_id == "g"
    monkeypatch.setenv("WAITLINE_TOPIC_PREFIX", "env.")
    assert Settings().group_id == "env.waitline"
    assert Settings(topic_prefix="flag.").group_id == "flag.waitline"  # the flag's prefix
    monkeypatch.setenv("WAITLINE_GROUP_ID", "named")
    assert Settings(topic_prefix="flag.").group_id == "named"


def test_the_worker_group_and_state_follow_the_prefix() -> None:
    from waitline.topics import load_topics
    from waitline.worker import runtime_config

    settings = Settings(topic_prefix="staging.")
    config = runtime_config(settings, load_topics(settings.topics_file, "staging."), 8)
    assert config.group_id == "staging.waitline"
    assert {name.split(".")[0] for name in config.topics.values()} == {"staging"}


def test_json_logs_route_librdkafka_through_python_logging() -> None:
    from waitline.logs import KAFKA_LOGGER
    from waitline.topics import load_topics
    from waitline.worker import runtime_config

    for log_format, routed in (("text", False), ("json", True)):
        settings = Settings(log_format=log_format)
        client = runtime_config(settings, load_topics(settings.topics_file, ""), 8).client
        assert ("logger" in client) is routed
        if routed:
            assert client["logger"].name == KAFKA_LOGGER
