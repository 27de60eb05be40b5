"""Prometheus metrics for a worker, read from its counters at scrape time (no hot-path cost)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from processors.runtime import Worker

__all__ = ["WorkerCollector", "serve_metrics"]


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
        for outcome, count in sorted(counters.outcomes.items()):
            outcomes.add_metric([outcome], count)
        yield outcomes
        yield CounterMetricFamily(
            "waitline_filter_errors",
            "`if` evaluations that failed",
            value=self.worker.core.filters.errors,
        )
        yield CounterMetricFamily(
            "waitline_input_gaps",
            "offset gaps in an input partition, each read again once",
            value=self.worker.input_gaps,
        )
        yield CounterMetricFamily(
            "waitline_input_gaps_recovered",
            "gaps whose records came on reading again (the broker had skipped them)",
            value=self.worker.input_gaps_recovered,
        )
        yield GaugeMetricFamily(
            "waitline_assigned_partitions", "partitions owned", value=len(self.worker.stores)
        )


def serve_metrics(port: int, worker: Worker) -> None:
    """Serve /metrics on ``port`` from a daemon thread."""
    REGISTRY.register(WorkerCollector(worker))
    start_http_server(port)
