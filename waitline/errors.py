"""waitline's exceptions: one root, a small documented tree.

    WaitlineError            root of every error waitline raises on purpose
    ├── ConfigError          settings, topics.yaml or a command line that cannot work
    ├── BrokerError          Kafka cannot be reached, refused a request or did not acknowledge
    │                        records; ``.code`` is the librdkafka error code when there is one
    ├── TopicError           the broker's topics are missing, or do not match topics.yaml
    ├── InvalidRecordError   a record that fails the wire contract (raised on the SDK side;
    │                        the processor never raises for bad input, it dead-letters it)
    └── WaitTimeoutError     ``wait_for_event`` passed its client-side deadline; the wait itself
                             stays registered and may still resolve

Catch ``WaitlineError`` to handle all of them. Errors from confluent-kafka are wrapped in
``BrokerError`` (``BrokerError.from_kafka``) so that callers never need to import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from confluent_kafka import KafkaError

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


class BrokerError(WaitlineError):
    """Kafka could not be reached, refused a request, or did not acknowledge records.

    ``code`` is the librdkafka error code (``confluent_kafka.KafkaError.code()``) when the
    error came from Kafka, else ``None``.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @classmethod
    def from_kafka(cls, error: KafkaError, context: str) -> BrokerError:
        """Wrap a confluent-kafka error: ``context`` says what waitline was doing."""
        return cls(f"{context}: {error.str()}", code=error.code())


class TopicError(WaitlineError):
    """The broker's topics are missing, or do not match what topics.yaml declares."""


class InvalidRecordError(WaitlineError):
    """A record that does not satisfy the wire contract."""


class WaitTimeoutError(WaitlineError):
    """The client-side deadline of ``wait_for_event`` passed; the wait stays registered."""
