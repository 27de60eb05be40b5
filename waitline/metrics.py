"""Prometheus metrics for a worker, read from its counters at scrape time (no hot-path cost).

Served over plain, unauthenticated HTTP on ``WAITLINE_METRICS_HOST`` (default 127.0.0.1, this
machine only) and ``WAITLINE_METRICS_PORT``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from processors.runtime import Worker
from waitline.errors import ConfigError

__all__ = ["OUTCOMES", "WorkerCollector", "serve_metrics"]

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


def serve_metrics(
    port: int, worker: Worker, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> Any:
    """Serve /metrics on ``host``:``port`` from a daemon thread; return the HTTP server.

    Raises ``ConfigError`` when the address cannot be had (in use, not this machine's).
    """
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    registry.register(WorkerCollector(worker))
    return server
