"""Prometheus metrics: request latency, tasks by status, engine seconds per second of video,
and the workers of this server, alive against wanted.

Task figures are read from the task table when scraped, so they are true
across every worker process and host that shares the database. Worker figures
are this server's own (``vedit serve``); workers started by ``vedit worker``
are not counted, except with VEDIT_DISPATCH=celery, where the Celery workers
that answer this server's ping are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vedit.dispatch import Health
from vedit.tasks.models import TaskStatus
from vedit.tasks.store import TaskStore

ENGINE_WINDOW_S = 600.0


class TaskCollector(Collector):
    def __init__(self, store: TaskStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self.store.counts_by_status()
        tasks = GaugeMetricFamily("vedit_tasks", "Tasks kept, by status", labels=["status"])
        for status in (TaskStatus.QUEUED, TaskStatus.RUNNING, *sorted(TaskStatus.FINAL)):
            tasks.add_metric([status], counts.get(status, 0))
        yield tasks
        engine_s, video_s = self.store.engine_totals(since=time.time() - ENGINE_WINDOW_S)
        speed = GaugeMetricFamily(
            "vedit_engine_seconds_per_video_second",
            "Worker seconds spent per second of output video, over the tasks that succeeded "
            "in the last 10 minutes",
        )
        speed.add_metric([], engine_s / video_s if video_s else 0.0)
        yield speed


class DispatchCollector(Collector):
    """The dispatcher's workers, as its health says (``Dispatcher.health``): this server's
    worker processes, or the broker and the Celery workers that answered its last ping."""

    def __init__(self, health: Callable[[], Health | None]) -> None:
        self.health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health = self.health()
        for gauge in health.gauges() if health is not None else []:
            yield GaugeMetricFamily(gauge.name, gauge.help, value=gauge.value)


class Metrics:
    """The registry of one app; the app's outermost middleware reports each request here."""

    def __init__(
        self,
        store: TaskStore,
        health: Callable[[], Health | None] = lambda: None,
    ) -> None:
        self.health = health  # /healthz reads it too
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "vedit_http_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.registry.register(TaskCollector(store))
        self.registry.register(DispatchCollector(health))

    def observe(self, method: str, route: object, status: int, seconds: float) -> None:
        """One answered request (``route``: the matched route; None for a 404, or for what
        a mounted app served, e.g. the docs' files: ``other``)."""
        path = getattr(route, "path", None) or ("unmatched" if status == 404 else "other")
        self.latency.labels(method, path, str(status)).observe(seconds)
