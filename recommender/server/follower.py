"""Follow Kafka from inside the server: fresh interactions for fold-in, items for the catalogue.

A daemon thread (confluent-kafka's client blocks) consumes both topics with ``assign()``. The
interactions topic is read from the offsets recorded in the first snapshot served (from the last
record it covered, to check that record is still the same one), so exactly the events that
snapshot has not seen become fresh events; each later snapshot drops the fresh events it covers.

Faults: nothing in a batch stops the thread (errors are counted and logged at most every 30 s).
A partition whose log was replaced (broker restarted empty, topic recreated) is detected as in
the builder (:mod:`recommender.logpos`): its fresh events are dropped, it is read again from the
new log's beginning, and the serving snapshot is not trusted to cover anything there until a
snapshot's fingerprint of that partition matches the record Kafka now holds at that offset.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from ..kafka import (
    BrokerHealth,
    KafkaSettings,
    TopicMissing,
    cached_high_watermarks,
    message_arrays,
    read_record,
    topic_id,
    topic_partitions,
)
from ..logpos import LastRecord, LogPositions
from ..logs import RateLimitedLog
from ..serving.fresh import FreshEvents
from ..serving.model import RecommenderModel
from .feed import Feed
from .metrics import ServerMetrics

__all__ = ["Coverage", "Follower"]

log = logging.getLogger(__name__)

_WATERMARK_CHECK_SECONDS = 5.0
#: Item records applied in one step between two looks for events: at most this many, or bytes.
ITEMS_PER_STEP = 5000
ITEMS_STEP_BYTES = 4 << 20
#: Item records read ahead of the catalogue at most (then the items topic is paused).
ITEMS_PENDING_BYTES = 64 << 20


class Coverage:
    """Which events a snapshot covers: offsets below its next offsets. A follower narrows this
    for partitions whose log was replaced since (see :class:`Follower`)."""

    def positions(self, model: RecommenderModel) -> dict[int, int]:
        return dict(model.positions)

    def catching_up(self) -> str | None:
        """Why answers are not to be trusted yet (the catalogue or the experiments still being
        read from their topics' beginnings), or None."""
        return None


class Follower(Coverage):
    """Consumes ``topic`` (and ``items_topic``) until :meth:`stop`."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        topic: str,
        items_topic: str | None,
        fresh: FreshEvents,
        feed: Feed,
        current_model: Callable[[], RecommenderModel | None],
        metrics: ServerMetrics,
        health: BrokerHealth,
        control_topic: str | None = None,
    ) -> None:
        self.kafka = kafka
        self.feed = feed
        self.control_topic = control_topic
        self.topic = topic
        self.items_topic = items_topic
        self.fresh = fresh
        self.current_model = current_model
        self.metrics = metrics
        self.health = health
        self.log_positions = LogPositions()
        self._topic_id: str | None = None
        self._untrusted: set[int] = set()  # partitions reset since the serving snapshot
        #: (topic, partition) -> the offset a whole-topic read must pass to be caught up; the
        #: topics themselves until they are assigned.
        self._behind: dict[tuple[str, int], int] = {}
        self._unassigned = {t for t in (items_topic, control_topic) if t is not None}
        #: Item records read and not applied yet (see _apply_items), and their bytes.
        self._pending: deque[Message] = deque()
        self._pending_bytes = 0
        self._items_paused: list[TopicPartition] = []
        self._verdicts: dict[tuple[int, int], bool] = {}  # (version, partition) -> trusted
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._errors = RateLimitedLog(log, interval=30.0)
        self._thread = threading.Thread(target=self._run, name="kafka-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    # -- coverage ------------------------------------------------------------------------------

    def positions(self, model: RecommenderModel) -> dict[int, int]:
        """The snapshot's next offsets, except where the log was replaced and the snapshot has
        not been shown to come from the new log: there it covers nothing (offset 0)."""
        positions = dict(model.positions)
        with self._lock:
            untrusted = sorted(self._untrusted)
        for p in untrusted:
            key = (model.version, p)
            with self._lock:
                verdict = self._verdicts.get(key)
            if verdict is None:
                verdict = self._from_new_log(model, p)
                with self._lock:
                    self._verdicts[key] = verdict
                    if verdict:
                        self._untrusted.discard(p)
                        log.info("snapshot v%d covers the new log of partition %d", *key)
            if not verdict:
                positions[p] = 0
        return positions

    def _from_new_log(self, model: RecommenderModel, partition: int) -> bool:
        entry = model.manifest.get("partitions", {}).get(str(partition), {})
        last = LastRecord.from_dict(entry.get("last_record"))
        if last is None:
            return model.positions.get(partition, 0) == 0
        found = read_record(self.kafka, self.topic, partition, last.offset, timeout=3.0)
        return found is not None and LastRecord.of(last.offset, *found) == last

    # -- the thread ----------------------------------------------------------------------------

    def _assign_whole(self, consumer: Consumer, topic: str, what: str) -> bool:
        """Read all of a small topic (the catalogue, experiment controls) from its beginning."""
        try:
            partitions = topic_partitions(consumer, topic, timeout=2.0)
        except TopicMissing as exc:
            log.debug("%s topic not ready: %s", what, exc)
            self._unassigned.discard(topic)  # nothing there to wait for
            return False
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=2.0)
            if high > low:  # a lower bound on some brokers: enough to say "caught up"
                with self._lock:
                    self._behind[(topic, p)] = high
        consumer.incremental_assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        )
        self._unassigned.discard(topic)
        log.info("reading the %s from %s", what, topic)
        return True

    def catching_up(self) -> str | None:
        if self.health.down_since is not None:
            return None  # the broker is away: serve what we have rather than nothing
        with self._lock:
            behind = sorted({topic for topic, _ in self._behind} | self._unassigned)
        if behind:
            return f"reading {', '.join(behind)} from the beginning"
        return None

    def _passed(self, messages: list[Message]) -> None:
        """Note how far the whole-topic reads got (after their records were applied)."""
        if not self._behind:
            return
        with self._lock:
            for m in messages:
                key = (str(m.topic()), int(m.partition() or 0))
                target = self._behind.get(key)
                if target is not None and int(m.offset() or 0) + 1 >= target:
                    del self._behind[key]

    def _assign_interactions(self, consumer: Consumer, model: RecommenderModel) -> bool:
        try:
            partitions = topic_partitions(consumer, self.topic, timeout=2.0)
        except TopicMissing as exc:
            self._errors.warning("topic", "cannot follow %s yet: %s", self.topic, exc)
            return False
        recorded = model.manifest.get("partitions", {})
        self._topic_id = current = topic_id(self.kafka.admin(), self.topic)
        snapshot_id = model.manifest.get("topic_id")
        if current and snapshot_id and current != snapshot_id:
            log.error(
                "topic %s was replaced since snapshot v%d was built (topic id %s, now %s): "
                "following every partition from its beginning; the snapshot covers none of it",
                self.topic,
                model.version,
                snapshot_id,
                current,
            )
            self.metrics.log_resets.inc(len(partitions))
            with self._lock:
                self._untrusted.update(partitions)
            consumer.incremental_assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions]
            )
            return True
        assignment = []
        for p in partitions:
            start = model.positions.get(p)
            if start is None:
                assignment.append(TopicPartition(self.topic, p, OFFSET_BEGINNING))
                continue
            last = LastRecord.from_dict(recorded.get(str(p), {}).get("last_record"))
            if last is not None and last.offset < start:
                start = last.offset  # read the last covered record again, to check it is the same
            self.log_positions.start_at(p, start, verify=last)
            assignment.append(TopicPartition(self.topic, p, start))
        consumer.incremental_assign(assignment)
        log.info(
            "following %s from snapshot v%d's offsets %s",
            self.topic,
            model.version,
            model.positions,
        )
        return True

    def _run(self) -> None:
        consumer = self.kafka.consumer(
            **{"fetch.wait.max.ms": 10, "auto.offset.reset": "earliest"},
            **self.health.client_config("server follower"),
        )
        admin = self.kafka.admin()
        interactions_assigned = False
        items_assigned = self.items_topic is None
        control_assigned = self.control_topic is None
        next_topic_check = 0.0
        next_check = time.monotonic() + _WATERMARK_CHECK_SECONDS
        try:
            while not self._stop.is_set():
                try:
                    retry = time.monotonic() >= next_topic_check
                    if not items_assigned and retry:
                        assert self.items_topic is not None
                        items_assigned = self._assign_whole(
                            consumer, self.items_topic, "item catalogue"
                        )
                    if not control_assigned and retry:
                        assert self.control_topic is not None
                        control_assigned = self._assign_whole(
                            consumer, self.control_topic, "experiments"
                        )
                    if retry:  # a topic that does not exist yet is looked for every second
                        next_topic_check = time.monotonic() + 1.0
                    if not interactions_assigned:
                        model = self.current_model()
                        if model is not None:
                            interactions_assigned = self._assign_interactions(consumer, model)
                    if not (interactions_assigned or items_assigned):
                        self._stop.wait(0.5)
                        continue
                    # A short timeout: consume() waits for the full batch or the timeout, and
                    # every millisecond here is a millisecond of freshness. With item records
                    # waiting, none: a step of them is applied between two looks for events.
                    wait = 0.0 if self._pending else 0.02
                    messages = consumer.consume(5000, timeout=wait)
                    if messages:
                        self._handle(consumer, messages)
                    self._apply_items(consumer)
                    if interactions_assigned and time.monotonic() >= next_check:
                        self._check_high_watermarks(consumer)
                        self._check_topic_identity(consumer, admin)
                        next_check = time.monotonic() + _WATERMARK_CHECK_SECONDS
                except Exception as exc:  # one bad batch or a client hiccup: count, go on
                    self.metrics.follower_errors.inc()
                    self._errors.warning("batch", "the Kafka follower skipped a batch: %r", exc)
                    self._stop.wait(0.1)
        finally:
            consumer.close()

    def _handle(self, consumer: Consumer, messages: list[Message]) -> None:
        good = []
        for m in messages:
            if m.error() is None:
                good.append(m)
            else:
                self.metrics.follower_errors.inc()
                self._errors.warning("consume", "consumer error: %s", m.error())
        # Events first: a user's newest clicks never wait behind a burst of item records.
        events = [m for m in good if m.topic() == self.topic]
        if events:
            self._follow(consumer, events)
        controls = [m.value() for m in good if m.topic() == self.control_topic]
        if controls:
            self.feed.controls(controls)
        self._passed([m for m in good if m.topic() == self.control_topic])
        for m in good:
            if m.topic() == self.items_topic:
                self._pending.append(m)
                self._pending_bytes += len(m.value() or b"") + len(m.key() or b"")

    def _apply_items(self, consumer: Consumer) -> None:
        """Apply one step of the item records read (at most ``ITEMS_PER_STEP``, or
        ``ITEMS_STEP_BYTES``); the rest wait for the next turn, after a look for new events.
        The items topic is paused while more than ``ITEMS_PENDING_BYTES`` wait: memory stays
        bounded whatever the burst."""
        if self._items_paused and self._pending_bytes < ITEMS_PENDING_BYTES // 4:
            consumer.resume(self._items_paused)
            self._items_paused = []
        if not self._pending:
            return
        step: list[Message] = []
        size = 0
        while self._pending and len(step) < ITEMS_PER_STEP and size < ITEMS_STEP_BYTES:
            m = self._pending.popleft()
            step.append(m)
            size += len(m.value() or b"") + len(m.key() or b"")
        self._pending_bytes -= size
        self.feed.items([m.value() for m in step], [m.key() for m in step])
        self._passed(step)
        if not self._items_paused and self._pending_bytes > ITEMS_PENDING_BYTES:
            topic = self.items_topic
            self._items_paused = [tp for tp in consumer.assignment() if tp.topic == topic]
            consumer.pause(self._items_paused)

    def _follow(self, consumer: Consumer, events: list[Message]) -> None:
        values, partitions, offsets, stamps = message_arrays(events)
        resets = self.log_positions.observe(partitions, offsets, stamps, values)
        if resets:
            for p, reason in resets.items():
                self._reset(consumer, p, reason)
            keep = ~np.isin(partitions, list(resets))
            values = [v for v, k in zip(values, keep.tolist(), strict=True) if k]
            partitions, offsets = partitions[keep], offsets[keep]
        self.feed.events(values, partitions, offsets)

    def _reset(self, consumer: Any, partition: int, reason: str) -> None:
        dropped = self.fresh.drop_partition(partition)
        self.metrics.log_resets.inc()
        with self._lock:
            self._untrusted.add(partition)
            self._verdicts = {k: v for k, v in self._verdicts.items() if k[1] != partition}
        self.log_positions.forget(partition)
        log.error(
            "partition %d of topic %s was reset: %s; dropped its %d fresh events and reading the "
            "new log from its beginning (the serving snapshot covers none of it)",
            partition,
            self.topic,
            reason,
            dropped,
        )
        consumer.seek(TopicPartition(self.topic, partition, OFFSET_BEGINNING))

    def _check_topic_identity(self, consumer: Consumer, admin: Any) -> None:
        if self.health.down_since is not None:
            return  # nothing to ask while the broker is away
        current = topic_id(admin, self.topic, timeout=1.0)
        previous = self._topic_id
        if current is None:
            return
        self._topic_id = current
        if previous is None or previous == current:
            return
        for tp in consumer.assignment():
            if tp.topic == self.topic:
                self._reset(consumer, tp.partition, f"the topic's id changed to {current}")

    def _check_high_watermarks(self, consumer: Consumer) -> None:
        highs = cached_high_watermarks(consumer, self.topic)
        for p, reason in self.log_positions.behind_high_watermarks(highs).items():
            self._reset(consumer, p, reason)
