"""The model builder: consume -> parse -> window -> retrain -> publish, and resume after a restart.

Threads: the calling thread consumes and maintains the window (:mod:`.consume`); one worker
thread fits ALS and publishes snapshots (:mod:`.publish`). A retrain works on a copy of the window
taken when it starts, so consumption continues while it runs; triggers that fire meanwhile
coalesce into one retrain on the newest window once the worker is free (never a queue of stale
retrains).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from ..errors import ConfigError, LockLost, RecommenderError, one_line
from ..kafka import BrokerHealth, KafkaSettings, topic_id, topic_partitions
from ..online.monitor import Monitor
from ..store import WriterLease, retry_transient
from ..timeorder import OrderCheck
from ..window import InteractionWindow
from .catalogue import ItemsTopicReader
from .config import BuilderConfig, BuilderStats
from .consume import Consumption
from .deadletter import DeadLetters
from .publish import Publisher, RetrainJob
from .tuner import Tuner

__all__ = ["ModelBuilder"]

log = logging.getLogger(__name__)

_PARTITION_REFRESH_SECONDS = 30.0
_WATERMARK_CHECK_SECONDS = 5.0
_STATUS_SECONDS = 2.0  # at most this often when something changed
_STATUS_HEARTBEAT_SECONDS = 30.0  # at least this often


class ModelBuilder:
    """Runs the consume/retrain/publish loop until asked to stop.

    Parameters
    ----------
    config : BuilderConfig
    kafka : KafkaSettings
    """

    def __init__(self, config: BuilderConfig, kafka: KafkaSettings) -> None:
        self.config = config
        self.kafka = kafka
        max_age_ms = None if config.window_seconds is None else int(config.window_seconds * 1000)
        half_life = config.half_life_seconds
        self.window = InteractionWindow(
            config.window_events,
            max_age_ms=max_age_ms,
            half_life_ms=None if half_life is None else max(1, int(half_life * 1000)),
        )
        self.stats = BuilderStats()
        self._abort = threading.Event()
        dead_letters = (
            DeadLetters(
                kafka, config.dead_letter_topic, self.stats, max_bytes=config.dead_letter_max_bytes
            )
            if config.dead_letter_topic
            else None
        )
        self.consumption = Consumption(config, self.window, self.stats, dead_letters)
        self.items_reader = (
            ItemsTopicReader(kafka, config.items_topic)
            if config.items_topic is not None and config.ranker != "off"
            else None
        )
        self.publisher = Publisher(
            config,
            self.stats,
            self._abort,
            catalogue=None if self.items_reader is None else self.items_reader.refresh,
        )
        self.tuner = Tuner(config, self.publisher, self._abort)
        self._order_says_time = True  # as far as the last retrain's window said
        self._status_written = 0.0
        self._last_retrain_start = time.monotonic()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrain")
        self._admin = kafka.admin()
        self.health = BrokerHealth()
        self._running: Future[None] | None = None

    @property
    def version(self) -> int:
        return self.publisher.version

    def _resume(self, partitions: list[int]) -> list[TopicPartition]:
        store = self.config.store

        def read() -> dict[str, Any] | None:
            for leftover in store.cleanup_incomplete():
                log.info("removed an incomplete snapshot left by a killed writer: %s", leftover)
            found = self.publisher.resume()
            self.publisher.version = store.highest_version()
            return found

        try:
            # A store that flaps at start-up (a reset connection) is tried again for a few
            # seconds; one that stays unreachable stops the builder with one line.
            manifest = retry_transient(read)
        except RecommenderError:
            raise
        except Exception as exc:  # the store's client: unreachable, denied, ...
            raise ConfigError(
                f"cannot read the snapshots in {store.location}: {one_line(exc)}; is the store "
                "reachable, and are the credentials right?"
            ) from None
        if manifest is None:
            where = "the beginning" if self.config.from_beginning else "the end"
            log.info(
                "no snapshot in %s: reading %s from %s", store.location, self.config.topic, where
            )
        return self.consumption.assignment(
            partitions, manifest, topic_id(self._admin, self.config.topic)
        )

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume and retrain until ``stop`` is set; then shut down cleanly."""
        if self.config.model == "auto" and self.config.pinned:
            flags = ", ".join(f"--{name}" for name in sorted(self.config.pinned))
            log.info(
                "%s given: self-tuning searches ALS only (leave ALS's flags out to search "
                "every family, or pin another family's settings with --model-setting)",
                flags,
            )
        store = self.config.store
        with store.writer_lock(ttl=self.config.lock_ttl) as lease:
            self.publisher.lease = lease
            try:
                self.publisher.store_id = store.identity(create=True)
            except Exception as exc:
                raise ConfigError(f"cannot write to {store.location}: {one_line(exc)}") from None
            consumer = self.kafka.consumer(
                **{"auto.offset.reset": "earliest"}, **self.health.client_config("builder")
            )
            monitor = self._monitor()
            try:
                self._loop(consumer, stop, lease)
            finally:
                if monitor is not None:
                    monitor.stop()
                self._shutdown(consumer)
            if lease.lost.is_set():
                raise LockLost(
                    f"{lease.lost_reason}: this builder stopped; one builder per store",
                    taken=True,
                )

    def _monitor(self) -> Monitor | None:
        """The online loop's monitor (see recommender.online.monitor), when exposures are on."""
        config = self.config
        if config.exposures_topic is None:
            return None
        monitor = Monitor(
            self.kafka,
            store=config.store,
            interactions_topic=config.topic,
            exposures_topic=config.exposures_topic,
            control_topic=config.experiments_topic,
            window_ms=int(config.attribution_window * 1000),
            ratings=config.ratings,
            health=self.health,
        )
        monitor.start()
        log.info(
            "monitor: attributing %s to exposures of %s within %.0f s",
            config.topic,
            config.exposures_topic,
            config.attribution_window,
        )
        return monitor

    def _loop(self, consumer: Any, stop: threading.Event, lease: WriterLease) -> None:
        partitions = topic_partitions(consumer, self.config.topic)
        consumer.assign(self._resume(partitions))
        self.consumption.start(consumer)
        known = set(partitions)
        now = time.monotonic()
        next_refresh = now + _PARTITION_REFRESH_SECONDS
        next_watermarks = now + _WATERMARK_CHECK_SECONDS
        while not stop.is_set() and not lease.lost.is_set():
            messages = consumer.consume(self.config.batch_size, timeout=self.config.poll_timeout)
            if messages:
                self.consumption.ingest(messages, consumer)
            if self.consumption.track(consumer):
                self.publisher.changed.set()
            backlog_read = self.consumption.caught_up
            caught_up = backlog_read and len(messages) < self.config.batch_size
            self._reap_retrain()
            if self._due_for_retrain(backlog_read) and self._running is None:
                self._start_retrain(consumer, partial=not backlog_read)
            published = self.stats.retrains_published
            if self.tuner.due(published=published, caught_up=caught_up) and len(self.window):
                self.tuner.start(self.window.events(), published=published)
            self._write_status()
            now = time.monotonic()
            if now >= next_watermarks and self.health.down_since is None:
                self.consumption.check_high_watermarks(consumer)
                self.consumption.check_topic_identity(
                    consumer, topic_id(self._admin, self.config.topic, timeout=1.0)
                )
                next_watermarks = time.monotonic() + _WATERMARK_CHECK_SECONDS
            if now >= next_refresh:
                known = self._refresh_partitions(consumer, known)
                next_refresh = time.monotonic() + _PARTITION_REFRESH_SECONDS

    def _refresh_partitions(self, consumer: Any, known: set[int]) -> set[int]:
        try:
            current = set(topic_partitions(consumer, self.config.topic, timeout=2.0))
        except Exception as exc:  # a metadata hiccup must not stop consumption
            log.debug("partition refresh failed: %s", exc)
            return known
        added = sorted(current - known)
        if added:
            log.info(
                "topic %s gained partitions %s: reading them from the beginning",
                self.config.topic,
                added,
            )
            self.consumption.added_partitions(added)
            consumer.incremental_assign(
                [TopicPartition(self.config.topic, p, OFFSET_BEGINNING) for p in added]
            )
        return known | current

    # -- retraining ----------------------------------------------------------------------------

    def _due_for_retrain(self, backlog_read: bool) -> bool:
        if not backlog_read and not self.config.partial_models:
            return False  # a model of part of the backlog would skew every user it misses
        fresh = self.consumption.new_since_retrain
        wanted = self.publisher.retrain_at
        if wanted is not None and time.monotonic() >= wanted and len(self.window):
            return True  # new settings to publish, or a refused model to try again
        if fresh == 0:
            return False
        if self.config.retrain_every and fresh >= self.config.retrain_every:
            return True
        interval = self.config.retrain_interval
        return interval is not None and time.monotonic() - self._last_retrain_start >= interval

    def _note_order(self, check: OrderCheck | None) -> None:
        """Say once, each time it changes, that the window's order is ignored (or no longer)."""
        says_time = check is None or check.says_time
        if says_time == self._order_says_time:
            return
        self._order_says_time = says_time
        if not says_time and check is not None:
            log.warning(
                "the window looks like a bulk load sorted by an item key (every pair of items "
                "that follow each other in several users' histories does so the same way, "
                "%.2f %% of %d times; a user's events a median %.0f ms apart): its order is "
                "ignored, so no family learns the sort; publish history in time order, or with "
                "record timestamps set to the events' times",
                100 * check.consistent_share,
                check.repeated,
                check.median_gap_ms or 0.0,
            )
        elif check is not None:
            log.info("the window's order says time again: sequence families learn from it")

    def _holdout_size(self) -> int:
        """Events to hold out for the quality gate (0: no gate this time)."""
        config = self.config
        return min(config.gate_max_events, int(len(self.window) * config.gate_holdout))

    def _start_retrain(self, consumer: Any, *, partial: bool) -> None:
        holdout_from = self.publisher.holdout_from()
        size = self._holdout_size() if holdout_from is not None else 0
        matrix = self.window.matrix(holdout_from=holdout_from, max_holdout=size)
        self._note_order(matrix.order)
        publisher = self.publisher
        self.stats.retrains_started += 1  # before the job copies the counts into its manifest
        job = RetrainJob(
            matrix,
            self.consumption.manifest_positions(consumer, matrix),
            self.stats.to_dict(),
            self.consumption.topic_id,
            publisher.setting,
            publisher.params_source,
            partial=partial,
            events=None if self.config.ranker == "off" else self.window.events(),
        )
        publisher.retrain_at = None
        self.consumption.new_since_retrain = 0
        self._last_retrain_start = time.monotonic()
        self._running = self._worker.submit(self.publisher.run, job)
        if self.window.compact_vocabularies():
            log.debug("compacted the id vocabularies")

    def _reap_retrain(self) -> None:
        running = self._running
        if running is None or not running.done():
            return
        self._running = None
        exc = None if running.cancelled() else running.exception()
        if exc is not None:  # the worker logs what it expects; nothing may vanish unlogged
            self.stats.retrains_failed += 1
            log.error("retrain failed unexpectedly, keeping the current model: %s", one_line(exc))
            log.debug("retrain failure", exc_info=exc)

    def status(self) -> dict[str, Any]:
        """The builder's status document (see :meth:`SnapshotStore.write_status`)."""
        return {
            "updated_at": time.time(),
            "pid": os.getpid(),
            "topic": self.config.topic,
            "window": {"events": len(self.window), "max_events": self.config.window_events},
            "backlog": self.consumption.catch_up.progress(self.consumption.next_offsets()),
            "retraining": self._running is not None,
            **self.publisher.status(),
            "tuning": self.tuner.status(),
            "counters": self.stats.to_dict(),
        }

    def _write_status(self, *, force: bool = False) -> None:
        now = time.monotonic()
        since = now - self._status_written
        changed = self.publisher.changed.is_set()
        if (
            not force
            and not (changed and since >= _STATUS_SECONDS)
            and since < _STATUS_HEARTBEAT_SECONDS
        ):
            return
        self.publisher.changed.clear()
        self._status_written = now
        try:
            self.config.store.write_status(self.status())
        except Exception as exc:  # a status document is a convenience: never stop for it
            log.debug("could not write the builder status: %s", exc)

    # -- shutdown ------------------------------------------------------------------------------

    def _shutdown(self, consumer: Any) -> None:
        self._abort.set()
        if self._running is not None:
            log.info("waiting for the running retrain to stop")
        self._worker.shutdown(wait=True, cancel_futures=True)
        self.tuner.join()
        if self.items_reader is not None:  # read in the retrain thread, which has stopped
            self.items_reader.close()
        try:
            consumer.close()
        except Exception as exc:
            log.debug("consumer close: %s", exc)
        if self.consumption.dead_letters is not None:
            self.consumption.dead_letters.close()
