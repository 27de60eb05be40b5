"""The metrics endpoint: where it listens, a port it cannot have, the paths it serves and the
outcomes it counts."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from coreharness import Core
from prometheus_client import CollectorRegistry

import waitline.metrics
import waitline.worker
from waitline.config import Settings
from waitline.errors import ConfigError
from waitline.metrics import WorkerCollector, serve_metrics
from waitline.processors.correlation import Target
from waitline.processors.kv import MemoryKV
from waitline.processors.state import PartitionState


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Counters:
    events: int = 3
    outcomes: dict[str, int] = field(default_factory=lambda: {"matched": 2})


def _worker() -> Any:
    core = SimpleNamespace(counters=_Counters(), filters=SimpleNamespace(errors=0, oversized=0))
    return SimpleNamespace(
        core=core,
        processed=5,
        input_gaps=0,
        input_gaps_recovered=0,
        refused_outputs=0,
        failed_records=0,
        stores={1: None},
        run_once=lambda: 0,
        on_assigned=None,
    )


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def test_metrics_listen_on_loopback_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().metrics_host == "127.0.0.1"
    monkeypatch.setenv("WAITLINE_METRICS_HOST", "0.0.0.0")
    assert Settings().metrics_host == "0.0.0.0"


def test_serve_metrics_binds_the_given_host(servers: list[Any]) -> None:
    port = _free_port()
    server = serve_metrics(port, _worker(), "127.0.0.1", registry=CollectorRegistry())
    servers.append(server)
    assert server.server_address[:2] == ("127.0.0.1", port)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    assert b"waitline_records_total 5.0" in body and b"waitline_events_total 3.0" in body


def test_a_port_in_use_is_a_configuration_mistake(servers: list[Any]) -> None:
    port = _free_port()
    servers.append(serve_metrics(port, _worker(), "127.0.0.1", registry=CollectorRegistry()))
    with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
        serve_metrics(port, _worker(), "127.0.0.1", registry=CollectorRegistry())


def test_the_worker_serves_metrics_where_the_settings_say(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[tuple[int, str]] = []
    worker = SimpleNamespace(run=lambda _stop: None)
    monkeypatch.setattr(waitline.worker, "build_worker", lambda _settings: worker)
    monkeypatch.setattr(waitline.worker.signal, "signal", lambda *_args: None)
    monkeypatch.setattr(
        waitline.metrics, "serve_metrics", lambda port, _w, host: served.append((port, host))
    )
    settings = Settings(metrics_port=9400, metrics_host="10.1.2.3")
    waitline.worker.run_worker(settings, threading.Event())
    assert served == [(9400, "10.1.2.3")]


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_paths_served(servers: list[Any]) -> None:
    """/metrics, /healthz and /readyz; 404 for any other path, / included."""
    port = _free_port()
    worker = _worker()
    servers.append(serve_metrics(port, worker, "127.0.0.1", registry=CollectorRegistry()))
    assert _get(port, "/metrics")[0] == 200
    status, body = _get(port, "/healthz")
    assert (status, body.startswith(b"starting:")) == (200, True)
    assert _get(port, "/readyz") == (503, b"not ready: no partitions assigned and restored yet\n")
    worker.run_once()
    worker.on_assigned([1])  # partition 1 is in the fake's stores
    assert _get(port, "/healthz")[1].startswith(b"ok: the run loop's last iteration ended")
    assert _get(port, "/readyz") == (200, b"ready: partitions [1]\n")
    for path in ("/", "/metricsx", "/healthz/x", "/favicon.ico"):
        assert _get(port, path)[0] == 404, path


def test_every_outcome_is_exported_and_rejected_ones_are_counted() -> None:
    """A registration the core rejects counts in waitline_outcomes_total{outcome="rejected"};
    outcomes that have not happened are there at 0."""
    core = Core(PartitionState(MemoryKV()))
    out = core.register("w1", "a", "b", 1_000, **{"if": "async.data.x ==="})  # does not compile
    assert [json.loads(e.value or b"")["outcome"] for e in out if e.target is Target.RESUMES] == [
        "rejected"
    ]
    core.register("w2", "a", "b", 1_000, timeout="oops")  # not a duration
    worker = _worker()
    worker.core = core.core
    registry = CollectorRegistry()
    registry.register(WorkerCollector(worker))
    samples = {
        s.labels["outcome"]: s.value
        for metric in registry.collect()
        if metric.name == "waitline_outcomes"
        for s in metric.samples
        if s.name == "waitline_outcomes_total"
    }
    assert samples == {"matched": 0, "timed_out": 0, "cancelled": 0, "rejected": 2}
