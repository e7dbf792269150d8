"""Prometheus metrics of one server process (prometheus-client, a registry per app)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..fresh import FreshEvents
    from .state import ModelHolder

__all__ = ["ServerMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    """All the server's metrics, in a registry of their own (several apps can share a process)."""

    def __init__(self, holder: ModelHolder, fresh: FreshEvents, catalog: Catalog) -> None:
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
        self.answers = Counter(
            "recommender_answers",
            "Recommendation answers, by how they were made (personalised, popular fallback).",
            ["source"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "recommender_fallbacks",
            "Answers that fell back to the most popular items (the user is unknown to the model).",
            registry=registry,
        )
        self.swaps = Counter(
            "recommender_model_swaps", "Snapshots loaded and swapped in.", registry=registry
        )
        self.swap_failures = Counter(
            "recommender_model_swap_failures",
            "Snapshots rejected as corrupt or inconsistent; the last good model kept serving.",
            registry=registry,
        )
        self.load_seconds = Histogram(
            "recommender_model_load_seconds",
            "Time to load and verify a snapshot.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        version = Gauge(
            "recommender_model_version",
            "Version of the serving snapshot (0: none).",
            registry=registry,
        )
        version.set_function(lambda: holder.model.version if holder.model else 0)
        age = Gauge(
            "recommender_model_age_seconds",
            "Seconds since the serving snapshot was created (-1: none).",
            registry=registry,
        )
        age.set_function(
            lambda: time.time() - float(holder.model.manifest["created_at"]) if holder.model else -1
        )
        refused = Gauge(
            "recommender_builder_quality_rejections",
            "Models the builder's quality gate refused since it started (from the serving "
            "snapshot's manifest).",
            registry=registry,
        )
        refused.set_function(
            lambda: (
                holder.model.manifest.get("builder", {}).get("quality_rejections", 0)
                if holder.model
                else 0
            )
        )
        users = Gauge("recommender_model_users", "Users in the serving model.", registry=registry)
        users.set_function(lambda: holder.model.n_users if holder.model else 0)
        items = Gauge("recommender_model_items", "Items in the serving model.", registry=registry)
        items.set_function(lambda: holder.model.n_items if holder.model else 0)

        fresh_users = Gauge(
            "recommender_fresh_users",
            "Users with events newer than the serving snapshot (held for fold-in).",
            registry=registry,
        )
        fresh_users.set_function(lambda: fresh.stats().users)
        fresh_events = Gauge(
            "recommender_fresh_events",
            "Events newer than the serving snapshot held for fold-in.",
            registry=registry,
        )
        fresh_events.set_function(lambda: fresh.stats().events)
        evicted = Gauge(
            "recommender_fresh_evicted_users",
            "Users whose fresh events were dropped by the LRU bound (since start).",
            registry=registry,
        )
        evicted.set_function(lambda: fresh.stats().evicted_users)
        catalog_items = Gauge(
            "recommender_catalog_items", "Items with metadata in the catalogue.", registry=registry
        )
        catalog_items.set_function(lambda: len(catalog))
        self.followed = Counter(
            "recommender_followed_events",
            "Events read from the interactions topic by the server, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.ingested = Counter(
            "recommender_ingested_events",
            "Events received on POST /interactions, by outcome.",
            ["outcome"],
            registry=registry,
        )

    def total(self, name: str, **labels: str) -> int:
        """The current value of one counter sample (0 before the first increment)."""
        return int(self.registry.get_sample_value(name, labels) or 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
