"""Follow Kafka from inside the server: fresh interactions for fold-in, items for the catalogue.

A daemon thread (confluent-kafka's client blocks) consumes both topics with ``assign()``. The
interactions topic is read from the offsets recorded in the first snapshot served, so exactly the
events that snapshot has not seen become fresh events; each later snapshot drops the fresh events
it covers (see :meth:`recommender.fresh.FreshEvents.drop_covered`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from ..catalog import Catalog
from ..events import parse_values
from ..fresh import FreshEvents
from ..kafka import KafkaSettings, TopicMissing, topic_partitions
from ..model import RecommenderModel
from .metrics import ServerMetrics

__all__ = ["Follower"]

log = logging.getLogger(__name__)


class Follower:
    """Consumes ``topic`` (and ``items_topic``) until :meth:`stop`."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        topic: str,
        items_topic: str | None,
        fresh: FreshEvents,
        catalog: Catalog,
        current_model: Callable[[], RecommenderModel | None],
        metrics: ServerMetrics,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.items_topic = items_topic
        self.fresh = fresh
        self.catalog = catalog
        self.current_model = current_model
        self.metrics = metrics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _assign_items(self, consumer: Consumer) -> bool:
        assert self.items_topic is not None
        try:
            partitions = topic_partitions(consumer, self.items_topic, timeout=2.0)
        except TopicMissing as exc:
            log.debug("items topic not ready: %s", exc)
            return False
        consumer.incremental_assign(
            [TopicPartition(self.items_topic, p, OFFSET_BEGINNING) for p in partitions]
        )
        log.info("reading the item catalogue from %s", self.items_topic)
        return True

    def _assign_interactions(self, consumer: Consumer, model: RecommenderModel) -> bool:
        try:
            partitions = topic_partitions(consumer, self.topic, timeout=2.0)
        except TopicMissing as exc:
            log.warning("cannot follow %s yet: %s", self.topic, exc)
            return False
        consumer.incremental_assign(
            [
                TopicPartition(self.topic, p, model.positions.get(p, OFFSET_BEGINNING))
                for p in partitions
            ]
        )
        log.info(
            "following %s from snapshot v%d's offsets %s",
            self.topic,
            model.version,
            model.positions,
        )
        return True

    def _run(self) -> None:
        consumer = self.kafka.consumer(**{"fetch.wait.max.ms": 10, "auto.offset.reset": "earliest"})
        interactions_assigned = False
        items_assigned = self.items_topic is None
        try:
            while not self._stop.is_set():
                if not items_assigned:
                    items_assigned = self._assign_items(consumer)
                if not interactions_assigned:
                    model = self.current_model()
                    if model is not None:
                        interactions_assigned = self._assign_interactions(consumer, model)
                if not (interactions_assigned or items_assigned):
                    self._stop.wait(0.5)
                    continue
                # A short timeout: consume() waits for the full batch or the timeout, and every
                # millisecond here is a millisecond of freshness.
                messages = consumer.consume(5000, timeout=0.02)
                if messages:
                    self._handle(messages)
        except Exception:
            log.exception("the Kafka follower stopped; fold-in now uses snapshots only")
        finally:
            consumer.close()

    def _handle(self, messages: list[Message]) -> None:
        good = [m for m in messages if m.error() is None]
        items = [m.value() for m in good if m.topic() == self.items_topic]
        if items:
            self.catalog.update(items)
        events = [m for m in good if m.topic() == self.topic]
        if not events:
            return
        model = self.current_model()
        parsed = parse_values([m.value() for m in events])
        if parsed.rejected.size:
            self.metrics.followed.labels("malformed").inc(int(parsed.rejected.size))
        ok = parsed.accepted
        partitions = np.fromiter((events[i].partition() for i in ok.tolist()), np.int64, ok.size)
        offsets = np.fromiter((events[i].offset() for i in ok.tolist()), np.int64, ok.size)
        if model is not None and ok.size:
            limits = np.array([model.positions.get(p, 0) for p in partitions.tolist()], np.int64)
            covered = offsets < limits
            if covered.any():  # already in the serving snapshot (possible right after a swap)
                self.metrics.followed.labels("covered").inc(int(covered.sum()))
                parsed = parsed.select(~covered)
                partitions, offsets = partitions[~covered], offsets[~covered]
        self.fresh.add(parsed, partitions, offsets)
        self.metrics.followed.labels("fresh").inc(len(parsed))
