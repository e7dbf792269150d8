"""The server's *state* metrics, read once per scrape: the serving model, the fresh-event store,
the catalogue, the broker connection, the builder's status and the monitor's figures (one look at
each, whatever the number of series). Counters live in :mod:`.metrics`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..items import Catalog
from ..kafka import BrokerHealth
from ..serving.fresh import FreshEvents
from ..serving.model import RecommenderModel

__all__ = ["StateCollector"]


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class StateCollector(Collector):
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
