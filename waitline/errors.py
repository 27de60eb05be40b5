"""waitline's exceptions: one root, a small documented tree.

    WaitlineError
    ├── ConfigError          settings, topics.yaml or a command line that cannot work
    │   └── TopicError       topics missing or not co-partitioned on the broker
    ├── BrokerError          Kafka cannot be reached or did not acknowledge (``.code``: the
    │                        librdkafka error code when there is one)
    ├── InvalidRecordError   a record that fails the wire contract (SDK side)
    └── WaitTimeoutError     ``wait_for_event`` gave up before the resume arrived

The processor never raises for bad input; it dead-letters it (SPEC §2.7).
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "InvalidRecordError",
    "TopicError",
    "WaitTimeoutError",
    "WaitlineError",
]


class WaitlineError(Exception):
    """Root of every error waitline raises on purpose."""


class ConfigError(WaitlineError):
    """Configuration that cannot work; the message says what to change."""


class TopicError(ConfigError):
    """The broker's topics do not match what waitline needs."""


class BrokerError(WaitlineError):
    """Kafka could not be reached, or did not acknowledge records."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class InvalidRecordError(WaitlineError):
    """A record that does not satisfy the wire contract."""


class WaitTimeoutError(WaitlineError):
    """The client-side deadline of ``wait_for_event`` passed; the wait stays registered."""
