"""The builder's reading side: where to start, consumed batches into the window, log resets.

Restart: every snapshot records, per partition, the offset of its window's oldest event, the next
offset to consume and a fingerprint of the last record consumed. A restarted builder reads each
partition from the first, rebuilds the window from those events (the same validation applies),
checks the fingerprint when it passes that record, and from the next offset on counts events as
new. Kafka is the source of truth: nothing else is persisted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Message, TopicPartition

from ..events import REJECT_REASONS, ParsedBatch, parse_values
from ..kafka import cached_high_watermarks, message_arrays
from ..logpos import LastRecord, LogPositions
from ..logs import RateLimitedLog
from ..window import InteractionWindow, WindowMatrix
from .catchup import CatchUp
from .config import BuilderConfig, BuilderStats
from .deadletter import DeadLetters

__all__ = ["Consumption"]

log = logging.getLogger(__name__)


class Consumption:
    """Feeds consumed batches into ``window`` and keeps the per-partition bookkeeping."""

    def __init__(
        self,
        config: BuilderConfig,
        window: InteractionWindow,
        stats: BuilderStats,
        dead_letters: DeadLetters | None,
    ) -> None:
        self.config = config
        self.window = window
        self.stats = stats
        self.dead_letters = dead_letters
        self.positions = LogPositions()
        self.topic_id: str | None = None  # the topic's identity (KIP-516 id), when known
        self.new_since_retrain = 0
        #: Per partition, the next offset the resumed snapshot had consumed: below it, replay.
        self._replay_until: dict[int, int] = {}
        #: Per partition, where reading starts (None: the log's beginning or end, resolved from
        #: the watermarks in :meth:`start`). A partition nothing was read from yet is recorded
        #: here in a manifest, never at its end (unless reading started there).
        self._starts: dict[int, int | None] = {}
        self._from_end: set[int] = set()
        self.catch_up = CatchUp()
        self._caught_up_logged = False
        self._bad_log = RateLimitedLog(log)

    # -- start ---------------------------------------------------------------------------------

    def assignment(
        self, partitions: list[int], manifest: Mapping[str, Any] | None, topic_id: str | None
    ) -> list[TopicPartition]:
        """Where to start reading each partition: from the resumed snapshot, else per -b.

        A snapshot of another incarnation of the topic (its recorded id differs from the
        topic's id now) is no place to resume from: every partition is read from the beginning.
        """
        topic = self.config.topic
        self.topic_id = topic_id
        recorded_id = manifest.get("topic_id") if manifest is not None else None
        fingerprinted = manifest is not None and all(
            LastRecord.from_dict(pos.get("last_record")) is not None
            for pos in manifest.get("partitions", {}).values()
        )
        replaced = manifest is not None and recorded_id and topic_id and recorded_id != topic_id
        if replaced and fingerprinted:
            # The id alone is not trusted: an embedded broker was seen to report another id for
            # the same, unchanged log (the soak: three needless window rebuilds). Each
            # partition's last record, read again below, says whether the log was replaced.
            assert manifest is not None
            log.warning(
                "topic %s reports id %s, snapshot v%d recorded %s: checking each partition's "
                "last record instead of rebuilding the window",
                topic,
                topic_id,
                manifest["version"],
                recorded_id,
            )
            replaced = False
        if replaced:
            assert manifest is not None
            self.stats.log_resets += len(manifest.get("partitions", {}))
            log.error(
                "topic %s was replaced since snapshot v%d (topic id %s, now %s: deleted and "
                "created again, or a broker that keeps topics in memory restarted); reading "
                "the new log of every partition from its beginning",
                topic,
                manifest["version"],
                recorded_id,
                topic_id,
            )
            self._starts = dict.fromkeys(partitions)
            return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        if manifest is None:
            start = OFFSET_BEGINNING if self.config.from_beginning else OFFSET_END
            self._starts = dict.fromkeys(partitions)
            if start == OFFSET_END:
                self._from_end = set(partitions)
            return [TopicPartition(topic, p, start) for p in partitions]
        recorded = {int(p): pos for p, pos in manifest.get("partitions", {}).items()}
        assignment = []
        for p in partitions:
            pos = recorded.get(p)
            if pos is None:  # a partition created after the snapshot: all of it is new
                self._starts[p] = None
                assignment.append(TopicPartition(topic, p, OFFSET_BEGINNING))
                continue
            last = LastRecord.from_dict(pos.get("last_record"))
            # Start at the last record consumed if the window holds nothing later there: reading
            # it again is how a replaced log is recognised (re-reading changes no window).
            start = int(pos["window_start"])
            if last is not None:
                start = min(start, last.offset)
            self.positions.start_at(p, start, verify=last)
            self._starts[p] = start
            self._replay_until[p] = int(pos["next_offset"])
            assignment.append(TopicPartition(topic, p, start))
        log.info(
            "resuming from snapshot v%d: rebuilding the window from %s, new events from %s",
            manifest["version"],
            {p: int(pos["window_start"]) for p, pos in recorded.items()},
            self._replay_until,
        )
        return assignment

    def start(self, consumer: Any) -> None:
        """Note where each assigned partition starts and what must be read before the first
        publication: its high watermark now (and, resuming, the replayed range)."""
        for p in sorted(self._starts):
            low, high = self._watermarks(consumer, p)
            if p in self._from_end:
                # No backlog, and the start is the consumer's resolved position (a watermark
                # read before a fetch can be too low on some brokers).
                continue
            if self._starts[p] is None and low is not None:
                self._starts[p] = low
            start = self._starts[p]
            self.catch_up.expect(
                p,
                start=start if start is not None else (low or 0),
                low=low or 0,
                high=high,
                replay_until=self._replay_until.get(p, 0),
            )
        self._check_catch_up(consumer)
        if not self.caught_up:
            log.info(
                "reading the backlog before the first publication: %s",
                self.catch_up.progress(self.next_offsets())["behind"],
            )

    def _watermarks(self, consumer: Any, partition: int) -> tuple[int | None, int | None]:
        """(low, high) of ``partition`` from the broker, or (None, None) if it did not answer."""
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(self.config.topic, partition), timeout=5.0, cached=False
            )
        except Exception as exc:  # KafkaException, or a timeout: the fetch responses will tell
            log.warning("could not read the watermarks of partition %d: %s", partition, exc)
            return None, None
        return int(low), int(high)

    def _fetched_high(self, consumer: Any, partition: int) -> int | None:
        """The high watermark the last fetch response reported (None: none yet)."""
        if consumer is None:
            return None
        try:
            high = consumer.get_watermark_offsets(
                TopicPartition(self.config.topic, partition), cached=True
            )[1]
        except Exception:  # KafkaException: nothing fetched yet
            return None
        return int(high) if high >= 0 else None

    @property
    def caught_up(self) -> bool:
        """Whether the backlog (and the resumed snapshot's range) has been read."""
        return self.catch_up.caught_up(self.next_offsets())

    def next_offsets(self) -> dict[int, int]:
        """Per partition, the next offset to read: where reading starts if nothing was read."""
        starts = {p: s for p, s in self._starts.items() if s is not None}
        return {**starts, **self.positions.next_offset}

    def _check_catch_up(self, consumer: Any) -> None:
        if self.catch_up.unconfirmed():
            self.catch_up.observe(cached_high_watermarks(consumer, self.config.topic))

    def track(self, consumer: Any) -> bool:
        """Confirm targets with fetched watermarks; True the first time the builder catches up."""
        if self._caught_up_logged:
            return False
        self._check_catch_up(consumer)
        if not self.caught_up:
            return False
        self._caught_up_logged = True
        log.info(
            "caught up with the backlog: %d events read (%d of them replayed); publishing from "
            "now on",
            self.stats.consumed,
            self.stats.replayed,
        )
        return True

    def added_partitions(self, partitions: list[int]) -> None:
        """Partitions created while reading: read from their beginning, never awaited."""
        for p in partitions:
            self._starts.setdefault(p, None)

    # -- batches -------------------------------------------------------------------------------

    def ingest(self, messages: list[Message], consumer: Any = None) -> ParsedBatch:
        """Parse a consumed batch into the window; returns the parsed batch."""
        if any(m.error() is not None for m in messages):
            good = []
            for m in messages:
                if m.error() is None:
                    good.append(m)
                else:
                    self.stats.consumer_errors += 1
                    self._bad_log.warning("consumer", "consumer error: %s", m.error())
            messages = good
        values, partitions, offsets, stamps = message_arrays(messages)
        resets = self.positions.observe(partitions, offsets, stamps, values)
        if resets:
            for p, reason in resets.items():
                self.reset_partition(consumer, p, reason)
            keep = ~np.isin(partitions, list(resets))  # re-read from the new log's beginning
            messages = [m for m, k in zip(messages, keep.tolist(), strict=True) if k]
            values = [v for v, k in zip(values, keep.tolist(), strict=True) if k]
            partitions, offsets, stamps = partitions[keep], offsets[keep], stamps[keep]
        self.stats.consumed += len(messages)
        parsed = parse_values(
            values, max_id_bytes=self.config.max_id_bytes, ratings=self.config.ratings
        )
        if parsed.rejected.size:
            self._reject(messages, parsed)
        ok = parsed.accepted
        if ok.size:
            stamps = stamps[ok]
            missing = stamps < 0  # TIMESTAMP_NOT_AVAILABLE
            if missing.any():
                stamps[missing] = int(time.time() * 1000)
            self.window.append(
                parsed, timestamps_ms=stamps, partitions=partitions[ok], offsets=offsets[ok]
            )
            parts = partitions[ok]
            until = np.array([self._replay_until.get(p, -1) for p in range(int(parts.max()) + 1)])
            new = int((offsets[ok] >= until[parts]).sum())
            self.stats.accepted += new
            self.stats.replayed += int(ok.size) - new
            self.new_since_retrain += new
        return parsed

    def _reject(self, messages: list[Message], parsed: ParsedBatch) -> None:
        for reason, count in parsed.reject_counts().items():
            self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + count
        for code in np.unique(parsed.reject_codes).tolist():
            k = int(np.flatnonzero(parsed.reject_codes == code)[0])
            m = messages[int(parsed.rejected[k])]
            reason = REJECT_REASONS[code - 1]
            count = int((parsed.reject_codes == code).sum())
            self._bad_log.warning(
                reason,
                "skipped %d malformed event(s) (%s), e.g. partition %d offset %d: %r",
                count,
                reason,
                m.partition(),
                m.offset(),
                (m.value() or b"")[:80],
                count=count,
            )
        if self.dead_letters is not None:
            self.dead_letters.send(messages, parsed)

    # -- log resets ----------------------------------------------------------------------------

    def reset_partition(self, consumer: Any, partition: int, reason: str) -> None:
        """Policy for a lost log: forget the window's events from it, read the new log from its
        beginning, and count every event there as new (RELIABILITY.md)."""
        dropped = self.window.drop_partition(partition)
        self.stats.log_resets += 1
        self.stats.lost_window_events += dropped
        self.positions.forget(partition)
        self._replay_until.pop(partition, None)
        self._starts[partition] = None  # the new log's beginning (resolved when recorded)
        self._from_end.discard(partition)
        self.catch_up.forget(partition, high=self._fetched_high(consumer, partition))
        self.new_since_retrain += dropped  # the window changed: a retrain is due
        log.error(
            "partition %d of topic %s was reset: %s; dropped its %d window events from the lost "
            "log and reading the new log from its beginning",
            partition,
            self.config.topic,
            reason,
            dropped,
        )
        if consumer is not None:
            consumer.seek(TopicPartition(self.config.topic, partition, OFFSET_BEGINNING))

    def check_topic_identity(self, consumer: Any, current: str | None) -> None:
        """A topic id that changed while we read: every partition's log was replaced."""
        if current is None:
            return
        previous, self.topic_id = self.topic_id, current
        if previous is None or previous == current:
            return
        reason = f"the topic's id changed from {previous} to {current}"
        for tp in consumer.assignment():
            if tp.topic == self.config.topic:
                self.reset_partition(consumer, tp.partition, reason)

    def check_high_watermarks(self, consumer: Any) -> None:
        """Detect a log that shrank below our position while no new record arrived."""
        highs = cached_high_watermarks(consumer, self.config.topic)
        for p, reason in self.positions.behind_high_watermarks(highs).items():
            self.reset_partition(consumer, p, reason)

    # -- what a snapshot records ---------------------------------------------------------------

    def manifest_positions(self, consumer: Any, matrix: WindowMatrix) -> dict[str, dict[str, Any]]:
        """Per partition: the window's oldest offset, the next offset, the last record read.

        A partition nothing was read from yet is recorded where reading it starts (its log's
        beginning, or the resumed position), never at its end unless the builder started from
        the end: a restarted builder then reads it, and a live one sees no false reset. Only
        positions really read go into the live position tracker.
        """
        for tp in consumer.assignment():
            p = tp.partition
            unread = p not in self.positions.next_offset and self._starts.get(p) is None
            if tp.topic == self.config.topic and unread:
                self._starts[p] = self._resolve_start(consumer, p)
        positions: dict[str, dict[str, Any]] = {}
        for p, offset in sorted(self.next_offsets().items()):
            entry: dict[str, Any] = {
                "window_start": matrix.partition_starts.get(p, offset),
                "next_offset": offset,
            }
            last = self.positions.last.get(p)
            if last is not None and last.offset == offset - 1:
                entry["last_record"] = last.to_dict()
            positions[str(p)] = entry
        return positions

    def _resolve_start(self, consumer: Any, partition: int) -> int | None:
        """Where reading ``partition`` starts, once the consumer knows (None: not yet)."""
        tp = TopicPartition(self.config.topic, partition)
        (resolved,) = consumer.position([tp])
        if resolved.offset >= 0:
            return int(resolved.offset)
        low, high = self._watermarks(consumer, partition)
        return high if partition in self._from_end else low
