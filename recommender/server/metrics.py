"""Prometheus metrics of the server (prometheus-client, a registry per app).

Counters are updated where things happen; everything that is a *state* (the serving model, the
fresh-event store, the catalogue, the broker connection) is read once per scrape by a collector,
so a scrape costs one look at each, whatever the number of series.

With ``--workers N`` the counters and histograms of every worker are summed in each scrape
(prometheus-client's multiprocess mode: the parent sets ``PROMETHEUS_MULTIPROC_DIR``), so a
scrape that reaches any worker sees the whole server; state gauges are the answering worker's,
and ``recommender_worker_info{worker}`` says which one that was.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..items import Catalog
from ..kafka import BrokerHealth
from ..serving.fresh import FreshEvents
from ..serving.model import RecommenderModel
from .state_metrics import StateCollector

__all__ = ["ServerMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    """All the server's metrics, in a registry of their own (several apps can share a process)."""

    def __init__(
        self,
        model: Callable[[], RecommenderModel | None],
        fresh: FreshEvents,
        catalog: Catalog,
        health: BrokerHealth | None = None,
        builder_status: Callable[[], dict[str, Any] | None] = lambda: None,
        online_status: Callable[[], dict[str, Any] | None] = lambda: None,
        new_items: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "recommender_http_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "recommender_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.score_batch = Histogram(
            "recommender_score_batch_size",
            "Requests scored together in one matrix product (concurrent requests share one read "
            "of the item factors; 1 means no sharing).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=registry,
        )
        self.answers = Counter(
            "recommender_answers",
            "Recommendation answers, by how they were made (personalised, fold-in, popular).",
            ["source"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "recommender_fallbacks",
            "Answers that fell back to the most popular items (the user is unknown to the model, "
            "or their vector could not be computed).",
            registry=registry,
        )
        self.server_errors = Counter(
            "recommender_server_errors",
            "Requests answered 500 because the server failed (a bug: each cause is logged with "
            "its traceback once, then counted), by route.",
            ["route"],
            registry=registry,
        )
        self.arm_failures = Counter(
            "recommender_experiment_arm_failures",
            "Experiment answers where the challenger failed and the champion answered alone.",
            registry=registry,
        )
        self.swaps = Counter(
            "recommender_model_swaps", "Snapshots loaded and swapped in.", registry=registry
        )
        self.swap_failures = Counter(
            "recommender_model_swap_failures",
            "Snapshots rejected (corrupt, inconsistent, built from another topic, or published "
            "by a builder that had lost the store's lock); each is counted once and the last good "
            "model kept serving.",
            registry=registry,
        )
        self.store_history_changes = Counter(
            "recommender_store_history_changes",
            "Times the snapshot store's history changed underneath (emptied, restored or "
            "replaced: the served version gone, every published one older); the server then "
            "serves the newest snapshot there.",
            registry=registry,
        )
        self.load_seconds = Histogram(
            "recommender_model_load_seconds",
            "Time to load and verify a snapshot.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.followed = Counter(
            "recommender_followed_events",
            "Events read from the interactions topic by the server, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.follower_errors = Counter(
            "recommender_follower_errors",
            "Batches or records the Kafka follower could not handle (it carried on).",
            registry=registry,
        )
        self.log_resets = Counter(
            "recommender_log_resets",
            "Partitions whose log was replaced under the server (broker restarted empty, topic "
            "recreated): their fresh events were dropped and the new log read from its start.",
            registry=registry,
        )
        self.exposures_logged = Counter(
            "recommender_exposures_logged",
            "Answers handed to Kafka as exposure records (--exposures-topic).",
            registry=registry,
        )
        self.exposures_dropped = Counter(
            "recommender_exposures_dropped",
            "Exposure records not logged, by reason: queue_full (Kafka away, its queue full), "
            "undelivered (not delivered in 30 s), error, shutdown. The answers were given.",
            ["reason"],
            registry=registry,
        )
        self.ingested = Counter(
            "recommender_ingested_events",
            "Events received on POST /interactions, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self._recent: deque[tuple[float, float]] = deque(maxlen=20_000)
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._state = StateCollector(model, fresh, catalog, health, builder_status, online_status)
        registry.register(self._state)
        self._worker = os.environ.get("RECOMMENDER_WORKER")
        self._multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")) and (
            self._worker is not None
        )

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per (route, status): prometheus-client's
        # labels() takes a lock and builds a key on every call (~10 µs a request).
        key = (route, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(route, str(status)), self.latency.labels(route))
            if len(self._children) < 4096:  # routes are a fixed set; statuses a few
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        self._recent.append((time.monotonic(), seconds))

    def recent_p99_ms(self, *, span: float = 60.0) -> float | None:
        """The 99th percentile of this process's request latency over the last ``span``
        seconds (for the page's chart), or None without requests."""
        since = time.monotonic() - span
        recent = [s for t, s in list(self._recent) if t >= since]
        if not recent:
            return None
        return float(np.percentile(np.asarray(recent), 99) * 1000)

    def total(self, name: str, **labels: str) -> int:
        """The current value of one sample (0 before the first increment)."""
        return int(self.registry.get_sample_value(name, labels) or 0)

    def totals(self, name: str, label: str) -> dict[str, int]:
        """A counter's current values by one label (those above 0)."""
        found: dict[str, int] = {}
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == name and sample.value > 0:
                    key = sample.labels.get(label, "")
                    found[key] = found.get(key, 0) + int(sample.value)
        return found

    def render(self) -> bytes:
        if not self._multiprocess:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # every worker's counters and histograms, summed
        registry.register(self._state)
        info = GaugeMetricFamily(
            "recommender_worker_info",
            "The worker process that answered this scrape (its state gauges are shown).",
            labels=["worker", "pid"],
        )
        info.add_metric([str(self._worker), str(os.getpid())], 1)
        registry.register(_Fixed(info))
        return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, *metrics: Metric) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics
