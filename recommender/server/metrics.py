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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..items import Catalog
from ..kafka import BrokerHealth
from ..serving.fresh import FreshEvents
from ..serving.model import RecommenderModel

__all__ = ["ServerMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class _StateCollector(Collector):
    """Gauges read from the server's state at scrape time."""

    def __init__(
        self,
        model: Callable[[], RecommenderModel | None],
        fresh: FreshEvents,
        catalog: Catalog,
        health: BrokerHealth | None,
        builder_status: Callable[[], dict[str, Any] | None],
        online_status: Callable[[], dict[str, Any] | None] = lambda: None,
        new_items: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.new_items = new_items
        self.model, self.fresh, self.catalog, self.health = model, fresh, catalog, health
        self.builder_status = builder_status
        self.online_status = online_status

    def collect(self) -> Iterator[Metric]:
        model = self.model()
        manifest = model.manifest if model is not None else {}
        builder = manifest.get("builder", {}) if isinstance(manifest.get("builder"), dict) else {}
        yield _gauge(
            "recommender_model_version",
            "Version of the serving snapshot (0: none).",
            model.version if model else 0,
        )
        yield _gauge(
            "recommender_model_age_seconds",
            "Seconds since the serving snapshot was created (-1: none).",
            time.time() - float(manifest.get("created_at", time.time())) if model else -1,
        )
        yield _gauge(
            "recommender_builder_quality_rejections",
            "Models the builder's quality gate refused since it started (from the serving "
            "snapshot's manifest).",
            builder.get("quality_rejections", 0),
        )
        yield _gauge(
            "recommender_model_users", "Users in the serving model.", model.n_users if model else 0
        )
        yield _gauge(
            "recommender_model_items", "Items in the serving model.", model.n_items if model else 0
        )
        stats = self.fresh.stats()
        yield _gauge(
            "recommender_fresh_users",
            "Users with events newer than the serving snapshot (held for fold-in).",
            stats.users,
        )
        yield _gauge(
            "recommender_fresh_events",
            "Events newer than the serving snapshot held for fold-in.",
            stats.events,
        )
        yield _gauge(
            "recommender_fresh_evicted_users",
            "Users whose fresh events were dropped to stay within the memory bound (since start).",
            stats.evicted_users,
        )
        dropped = GaugeMetricFamily(
            "recommender_fresh_dropped_events",
            "Fresh events dropped since start, by reason: user_cap (over --max-fresh-per-user), "
            "memory (their user evicted to stay within --fresh-memory), lost_log (a log reset).",
            labels=["reason"],
        )
        for reason in ("user_cap", "memory", "lost_log"):
            dropped.add_metric([reason], stats.dropped_by_reason.get(reason, 0))
        yield dropped
        yield _gauge(
            "recommender_fresh_bytes", "Memory held by fresh events (estimate).", stats.bytes
        )
        yield _gauge(
            "recommender_fresh_max_bytes", "The fresh-event memory bound.", stats.max_bytes
        )
        yield _gauge(
            "recommender_catalog_items", "Items with metadata in the catalogue.", len(self.catalog)
        )
        yield _gauge(
            "recommender_catalog_bytes",
            "Memory held by the catalogue (estimate; bounded by --catalog-memory).",
            self.catalog.bytes,
        )
        yield _gauge(
            "recommender_catalog_forgotten_deletions",
            "Remembered deletions forgotten to stay within --catalog-memory (oldest first).",
            self.catalog.forgotten_deletions,
        )
        new_items = GaugeMetricFamily(
            "recommender_new_items",
            "Items the serving model does not know that can be recommended now, by how their "
            "vector was made: events (item fold-in from fresh events) or content (categories).",
            labels=["source"],
        )
        counts = self.new_items()
        for source in ("events", "content"):
            new_items.add_metric([source], counts.get(source, 0))
        yield new_items
        rejected = CounterMetricFamily(
            "recommender_catalog_rejected_records",
            "Items-topic records skipped, by reason (bad_categories, bad_labels, bad_time, "
            "not_json, too_big, catalog_full, ...).",
            labels=["reason"],
        )
        for reason, count in sorted(self.catalog.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield CounterMetricFamily(
            "recommender_catalog_ignored_attributes",
            "Item attributes left out of applied records (not a finite number, a bad name, or "
            "past 32); the records' other fields applied.",
            value=self.catalog.ignored_attributes,
        )
        yield from self._builder(manifest)
        yield from self._online()

    def _online(self) -> Iterator[Metric]:
        """The monitor's totals over its last 24 hours, by arm (every replica shows the same:
        they come from the store)."""
        live = (self.online_status() or {}).get("live") or {}
        day = (live.get("periods") or {}).get("24h") or {}
        exposures = CounterMetricFamily(
            "recommender_online_exposures",
            "Answers shown (logged exposures) in the monitor's last 24 hours, by arm.",
            labels=["arm"],
        )
        hits = CounterMetricFamily(
            "recommender_online_hits",
            "Of those, answers with at least one attributed like, by arm.",
            labels=["arm"],
        )
        for arm, counts in (day.get("arms") or {}).items():
            exposures.add_metric([arm], counts.get("exposures", 0))
            hits.add_metric([arm], counts.get("hits", 0))
        yield exposures
        yield hits

    def _builder(self, manifest: dict[str, Any]) -> Iterator[Metric]:
        from ..status import builder_summary

        summary = builder_summary(manifest or None, self.builder_status())
        settings = summary["settings"]
        family = GaugeMetricFamily(
            "recommender_model_family_info",
            "The model family serving (1 for it); source is default, pinned or tuned.",
            labels=["family", "source"],
        )
        if settings.get("family"):
            family.add_metric([str(settings["family"]), str(settings.get("source"))], 1)
        yield family
        params = GaugeMetricFamily(
            "recommender_model_params",
            "Settings of the serving model's family, by name; source is default, pinned or tuned.",
            labels=["name", "source"],
        )
        for name, value in (settings.get("params") or {}).items():
            if name != "random_seed" and isinstance(value, int | float):
                params.add_metric([name, str(settings.get("source"))], value)
        yield params
        gate = summary["gate"]
        yield _gauge(
            "recommender_builder_consecutive_refusals",
            "Models the quality gate refused in a row since the serving one (0: the last was "
            "published).",
            gate.get("consecutive_refusals") or 0,
        )
        yield _gauge(
            "recommender_builder_forced_publications",
            "Models published despite a refusal because the serving one was older than "
            "--max-model-age (since the builder started).",
            gate.get("forced_publications") or 0,
        )
        yield _gauge(
            "recommender_builder_gate_abstentions",
            "Retrains the gate did not judge for lack of held-out events (since the builder "
            "started).",
            gate.get("abstentions") or 0,
        )
        failures = summary["failures"]
        yield _gauge(
            "recommender_builder_retrains_failed",
            "Retrains that failed or could not be published (since the builder started; from "
            "its status document, else the serving manifest).",
            failures["retrains_failed"],
        )
        yield _gauge(
            "recommender_builder_publication_failures",
            "Of those, snapshots the store did not take (unreachable, or the writer lock could "
            "not be confirmed).",
            failures["publication_failures"],
        )
        tuning = summary["tuning"]
        yield _gauge(
            "recommender_tuning_running",
            "1 while a tuning session runs.",
            tuning.get("state") == "running",
        )
        yield _gauge(
            "recommender_tuning_sessions",
            "Tuning sessions the builder finished since it started.",
            tuning.get("sessions") or 0,
        )
        last = tuning.get("last") or {}
        yield _gauge(
            "recommender_tuning_last_trials",
            "Trials in the last tuning session.",
            last.get("trials") or 0,
        )
        seen = summary["builder_seen_seconds_ago"]
        yield _gauge(
            "recommender_builder_status_age_seconds",
            "Seconds since the builder last wrote its status (-1: never).",
            -1 if seen is None else seen,
        )
        if self.health is not None:
            yield _gauge(
                "recommender_kafka_up",
                "1 while every Kafka client of this process reaches a broker, else 0.",
                0 if self.health.down_since is not None else 1,
            )
            yield _gauge(
                "recommender_kafka_unreachable_seconds",
                "Seconds since a Kafka client of this process lost its brokers (0: connected).",
                self.health.unreachable_seconds(),
            )
            yield _gauge(
                "recommender_kafka_client_errors",
                "Errors Kafka clients of this process reported since start.",
                self.health.errors,
            )


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
        self._state = _StateCollector(model, fresh, catalog, health, builder_status, online_status)
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
