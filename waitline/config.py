"""Configuration: one frozen settings object, from ``WAITLINE_*`` environment variables and flags.

Precedence: command-line flags > environment variables > defaults. librdkafka settings that
waitline has no field for (SASL, SSL, client.id, ...) pass through ``kafka``::

    WAITLINE_BOOTSTRAP_SERVERS=broker-1:9092,broker-2:9092
    WAITLINE_KAFKA='{"security.protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN",
                     "sasl.username": "waitline"}'
    WAITLINE_SASL_PASSWORD=...          # kept out of logs and reprs (SecretStr)

Secrets stay out of every repr, str, dump and error message: ``sasl_password`` and
``ssl_key_password`` are ``SecretStr``, and so is every ``kafka`` entry whose name says it holds
one (``is_secret_setting``). Only ``as_librdkafka_dict``, which renders the configuration of
every Kafka client waitline creates, hands them out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from waitline.schemas.durations import DurationError, parse_duration

__all__ = ["Settings", "default_topics_file", "is_secret_setting"]

_PROJECT_ROOT = Path(__file__).resolve().parent.parent

# A librdkafka setting whose name contains one of these holds a secret (sasl.password,
# ssl.key.pem, ssl.keystore.password, sasl.oauthbearer.client.secret, sasl.oauthbearer.config,
# ...assertion.private.key.passphrase, sasl.jaas.config, tokens, credentials).
_SECRET_WORDS = (
    "password",
    "passphrase",
    "secret",
    "token",
    "credential",
    "private",
    "key.pem",
    "ssl_key",
    "jaas",
    "sasl.oauthbearer.config",
)


def is_secret_setting(name: str) -> bool:
    """Whether the librdkafka setting ``name`` holds a secret, by its name."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def default_topics_file() -> Path:
    """``./topics.yaml`` if there is one, else the one in waitline's source tree."""
    here = Path("topics.yaml")
    return here if here.exists() else _PROJECT_ROOT / "topics.yaml"


class Settings(BaseSettings):
    """Everything a waitline process needs to know; frozen once built."""

    # hide_input_in_errors: a validation error never quotes what it was given (a secret, maybe).
    model_config = SettingsConfigDict(
        env_prefix="WAITLINE_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated"
    )
    kafka: Annotated[dict[str, str | SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="extra librdkafka settings (SASL, SSL, ...), as a JSON object",
    )
    sasl_password: SecretStr | None = Field(default=None, description="sasl.password")
    ssl_key_password: SecretStr | None = Field(default=None, description="ssl.key.password")
    topics_file: Path = Field(default_factory=default_topics_file)
    topic_prefix: str = Field(default="", description="prepended to every topic name")
    group_id: str = Field(
        default="waitline",
        min_length=1,
        description="the processors' consumer group (default: the topic prefix + waitline)",
    )
    state_dir: Path = Field(default=Path(".waitline/state"), description="RocksDB stores")
    event_ttl: str = Field(default="24h", description="how long events stay available")
    dedup_window: str = Field(default="24h", description="how long idempotency keys are kept")
    tombstone_retention: str = Field(
        default="7d", description="how long a resolved wait's resume can be re-emitted"
    )
    guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="exactly_once needs a broker with working transactions (docs/guarantees.md)",
    )
    transactional_id: str | None = Field(
        default=None,
        description="exactly_once: the prefix of the per-partition transactional ids, the same "
        "for every worker of a group (default: the group id)",
    )
    max_record_bytes: int = Field(
        default=1_048_576, gt=0, description="the largest input record (key, value, headers)"
    )
    max_clock_skew: str = Field(
        default="5m", description="how far a producer's record time may run ahead of the worker"
    )
    max_pair_events: int = Field(
        default=1_000_000, gt=0, description="buffered events kept per name|correlationKey pair"
    )
    max_registration_scan: int = Field(
        default=1_000, gt=0, description="buffered events one registration reads, at most"
    )
    batch_size: int = Field(default=20_000, gt=0, description="records per consume call, max")
    timer_batch: int = Field(default=10_000, gt=0, description="due timers fired per loop, max")
    purge_interval: str = Field(default="10s", description="how often expired state is purged")
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Prometheus /metrics port (worker process i: port + i)",
    )
    processes: int = Field(
        default=1, ge=1, le=64, description="worker processes one `waitline worker` runs"
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="address /metrics listens on: this machine only unless set (0.0.0.0: all)",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="log lines as text, or one JSON object per line"
    )

    @model_validator(mode="before")
    @classmethod
    def _group_follows_prefix(cls, data: Any) -> Any:
        """Without a group id, the group is ``<topic prefix>waitline``: a prefix isolates the
        consumer group (and the state directory and transactional ids named after it) as it
        isolates the topics."""
        if isinstance(data, dict) and data.get("group_id") is None:
            prefix = data.get("topic_prefix")
            data = {**data, "group_id": f"{prefix if isinstance(prefix, str) else ''}waitline"}
        return data

    @field_validator("kafka", mode="before")
    @classmethod
    def _kafka(cls, value: object) -> object:
        """A JSON object (from the environment) or a mapping of scalars; values become strings
        (as librdkafka takes them) and secret ones ``SecretStr``. Messages never quote values."""
        if isinstance(value, str | bytes):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"not valid JSON: {exc.msg} at column {exc.colno}; expected an object "
                    """such as '{"security.protocol": "SASL_SSL"}'"""
                ) from None
            if not isinstance(value, dict):
                raise ValueError(f"must be a JSON object, got {type(value).__name__}")
        if not isinstance(value, dict):
            raise ValueError(
                f"must be a mapping of librdkafka settings, got {type(value).__name__}"
            )
        settings: dict[str, str | SecretStr] = {}
        for name, item in value.items():
            if not isinstance(name, str):
                raise ValueError(f"setting names must be strings, got {type(name).__name__}")
            if isinstance(item, SecretStr):
                text = item.get_secret_value()
            elif isinstance(item, bool):
                text = "true" if item else "false"
            elif isinstance(item, str | int | float):
                text = str(item)
            else:
                raise ValueError(
                    f"{name!r} must be a string, number or boolean, got {type(item).__name__}"
                )
            settings[name] = SecretStr(text) if is_secret_setting(name) else text
        return settings

    @field_validator(
        "event_ttl", "dedup_window", "tombstone_retention", "purge_interval", "max_clock_skew"
    )
    @classmethod
    def _duration(cls, value: str) -> str:
        try:
            parse_duration(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _metrics_ports(self) -> Settings:
        if self.metrics_port is not None and self.metrics_port + self.processes - 1 > 65535:
            raise ValueError(
                f"metrics ports {self.metrics_port}-{self.metrics_port + self.processes - 1} "
                "(one per worker process) go past 65535"
            )
        return self

    def ms(self, field: str) -> int:
        """A duration field in milliseconds."""
        value: str = getattr(self, field)
        return parse_duration(value)

    def as_librdkafka_dict(self) -> dict[str, Any]:
        """The client settings shared by every producer, consumer and admin client waitline
        creates, secrets included: the one place they are rendered. Pass it to librdkafka
        only; never log it."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        for name, value in self.kafka.items():
            config[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_key_password is not None:
            config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        return config
