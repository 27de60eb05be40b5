"""Prometheus metrics and health endpoints for a worker, read at request time (no hot-path cost).

Served over plain, unauthenticated HTTP on ``WAITLINE_METRICS_HOST`` (default 127.0.0.1, this
machine only) and ``WAITLINE_METRICS_PORT``:

- ``/metrics``: the ``waitline_*`` metrics (Prometheus text format);
- ``/healthz``: 200 while the run loop goes round, 503 once it has stalled (``waitline.health``);
- ``/readyz``: 200 while the worker's partitions are restored and processing, else 503;
- any other path: 404.

The health endpoints answer one line of text saying why.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import fields
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from waitline.errors import ConfigError
from waitline.health import Health, watch
from waitline.processors.runtime import Worker

__all__ = ["OUTCOMES", "WorkerCollector", "make_app", "serve_metrics"]

# Every outcome a wait can have (schemas.models.Outcome), each exported from the start at 0, so
# that a rate or an alert on one that has not happened yet has a series to read.
OUTCOMES = ("matched", "timed_out", "cancelled", "rejected")


class WorkerCollector(Collector):
    """Exposes ``waitline_*`` metrics of one worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        counters = self.worker.core.counters
        yield CounterMetricFamily(
            "waitline_records", "input records read", value=self.worker.processed
        )
        for item in fields(counters):
            if item.name == "outcomes":
                continue
            yield CounterMetricFamily(
                f"waitline_{item.name}",
                f"core counter {item.name}",
                value=getattr(counters, item.name),
            )
        outcomes = CounterMetricFamily("waitline_outcomes", "waits resolved", labels=["outcome"])
        counts = {outcome: 0 for outcome in OUTCOMES}
        counts.update(counters.outcomes)
        for outcome, count in sorted(counts.items()):
            outcomes.add_metric([outcome], count)
        yield outcomes
        filters, worker = self.worker.core.filters, self.worker
        for name, text, value in (
            ("filter_errors", "`if` evaluations that failed", filters.errors),
            (
                "filter_oversized",
                "`if` evaluations not run: the event fields read weigh more than the bound allows",
                filters.oversized,
            ),
            (
                "failed_records",
                "input records the worker failed on, dead-lettered with the error (a defect)",
                worker.failed_records,
            ),
            (
                "refused_outputs",
                "outputs the producer or broker refused, dead-lettered by reference",
                worker.refused_outputs,
            ),
            (
                "input_gaps",
                "offset gaps in an input partition, each read again once",
                worker.input_gaps,
            ),
            (
                "input_gaps_recovered",
                "gaps whose records came on reading again (the broker had skipped them)",
                worker.input_gaps_recovered,
            ),
        ):
            yield CounterMetricFamily(f"waitline_{name}", text, value=value)
        yield GaugeMetricFamily(
            "waitline_assigned_partitions", "partitions owned", value=len(self.worker.stores)
        )


def make_app(registry: CollectorRegistry, health: Health) -> WSGIApplication:
    """The WSGI application: ``/metrics`` from ``registry``, ``/healthz`` and ``/readyz`` from
    ``health``, 404 for anything else."""
    metrics = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            served: Iterable[bytes] = metrics(environ, start_response)
            return served
        if path in ("/healthz", "/readyz"):
            ok, why = health.live() if path == "/healthz" else health.ready()
            return _text(start_response, "200 OK" if ok else "503 Service Unavailable", why)
        return _text(start_response, "404 Not Found", "not found: try /metrics, /healthz, /readyz")

    return app


def serve_metrics(
    port: int, worker: Worker, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> WSGIServer:
    """Serve ``make_app`` on ``host``:``port`` from daemon threads; return the HTTP server.

    Call before ``worker.run``: the worker's loop and assignments are watched from here on
    (``waitline.health.watch``). Raises ``ConfigError`` when the address cannot be had (in use,
    not this machine's).
    """
    health = watch(worker)
    try:
        # The family of the address (IPv4 or IPv6), as http.server and prometheus_client do.
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        server_class = type("_Server", (_ThreadingServer,), {"address_family": family})
        server: WSGIServer = make_server(
            str(address[0]), port, make_app(registry, health), server_class, _QuietHandler
        )
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    registry.register(WorkerCollector(worker))
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def _text(start_response: StartResponse, status: str, line: str) -> list[bytes]:
    body = f"{line}\n".encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request, none of them holding the process up at exit."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No access log line on stderr per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
