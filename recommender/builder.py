"""The model builder: consume -> parse -> window -> retrain -> publish, and resume after a restart.

Threads: the calling thread consumes and maintains the window; one worker thread fits ALS and
publishes snapshots. A retrain works on a copy of the window taken when it starts, so consumption
continues while it runs; triggers that fire meanwhile coalesce into one retrain on the newest window
once the worker is free (never a queue of stale retrains).

Restart: every snapshot records, per partition, the offset of its window's oldest event and the
next offset to consume. A restarted builder reads each partition from the former, rebuilds the
window from those events (re-applying the same validation), and from the latter on treats events as
new. Kafka is the source of truth: nothing else is persisted.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Message, TopicPartition

from .errors import ConfigError, SnapshotError, TrainingAborted, TrainingError
from .events import DEFAULT_MAX_ID_BYTES, REJECT_REASONS, ParsedBatch, parse_values
from .kafka import KafkaSettings, topic_partitions
from .logs import RateLimitedLog
from .quality import FactorModel, GateResult, judge
from .snapshot import (
    cleanup_incomplete,
    list_snapshot_dirs,
    load_snapshot,
    prune_snapshots,
    publish_snapshot,
    read_manifest,
    snapshot_arrays,
)
from .training import AlsParams, TrainedFactors, check_factors, solve_users, train_als
from .window import InteractionWindow, WindowMatrix

__all__ = ["BuilderConfig", "BuilderStats", "ModelBuilder"]

log = logging.getLogger(__name__)

_PARTITION_REFRESH_SECONDS = 30.0


@dataclass(frozen=True, kw_only=True, slots=True)
class BuilderConfig:
    """Everything the builder needs besides the Kafka connection."""

    topic: str
    retrain_every: int
    window_events: int
    window_seconds: float | None = None
    retrain_interval: float | None = None
    from_beginning: bool = False
    model_dir: Path = Path("model")
    keep: int = 3
    params: AlsParams = field(default_factory=AlsParams)
    dead_letter_topic: str | None = None
    max_id_bytes: int = DEFAULT_MAX_ID_BYTES
    batch_size: int = 10_000
    poll_timeout: float = 0.2
    #: Quality gate: refuse a model whose hit rate on the newest events is more than this
    #: fraction below the serving model's (None: no gate).
    max_quality_drop: float | None = 0.2
    gate_holdout: float = 0.02
    gate_min_events: int = 500
    gate_max_events: int = 5000

    def __post_init__(self) -> None:
        if self.window_events < 1:
            raise ConfigError("WINDOW_LENGTH must be at least 1")
        if self.retrain_every < 0:
            raise ConfigError("RETRAIN_FREQUENCY must be >= 0")
        if self.retrain_every == 0 and not self.retrain_interval:
            raise ConfigError("RETRAIN_FREQUENCY 0 needs --retrain-interval, or nothing retrains")
        if self.retrain_interval is not None and self.retrain_interval <= 0:
            raise ConfigError("--retrain-interval must be positive")
        if self.window_seconds is not None and self.window_seconds <= 0:
            raise ConfigError("--window-seconds must be positive")
        if self.keep < 1:
            raise ConfigError("--keep must be at least 1")
        if self.max_quality_drop is not None and not 0 <= self.max_quality_drop < 1:
            raise ConfigError("--max-quality-drop must be from 0 to below 1 (or off)")
        if not 0 < self.gate_holdout < 0.5:
            raise ConfigError("--gate-holdout must be a fraction between 0 and 0.5")


@dataclass(slots=True)
class BuilderStats:
    """Counters since this process started (written into every manifest)."""

    consumed: int = 0
    accepted: int = 0
    replayed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    retrains_started: int = 0
    retrains_published: int = 0
    retrains_failed: int = 0
    quality_rejections: int = 0
    consumer_errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "consumed": self.consumed,
            "accepted": self.accepted,
            "replayed": self.replayed,
            "rejected": dict(self.rejected),
            "retrains_started": self.retrains_started,
            "retrains_published": self.retrains_published,
            "retrains_failed": self.retrains_failed,
            "quality_rejections": self.quality_rejections,
            "consumer_errors": self.consumer_errors,
        }


@dataclass(frozen=True, slots=True)
class _RetrainJob:
    matrix: WindowMatrix
    partitions: dict[str, dict[str, int]]
    stats: dict[str, Any]


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
        self.window = InteractionWindow(config.window_events, max_age_ms=max_age_ms)
        self.stats = BuilderStats()
        self.version = 0
        self.next_offset: dict[int, int] = {}
        self._replay_until = np.full(0, -1, dtype=np.int64)
        self._new_since_retrain = 0
        self._last_retrain_start = time.monotonic()
        self._abort = threading.Event()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrain")
        self._running: Future[None] | None = None
        self._bad_log = RateLimitedLog(log)
        self._lock_file: TextIO | None = None
        self._dead_letters = (
            kafka.producer(**{"linger.ms": 50}) if config.dead_letter_topic else None
        )
        self._serving: FactorModel | None = None  # what the quality gate compares against

    # -- start-up ------------------------------------------------------------------------------

    def _acquire_model_dir(self) -> None:
        model_dir = self.config.model_dir
        try:
            model_dir.mkdir(parents=True, exist_ok=True)
            self._lock_file = (model_dir / ".builder.lock").open("w")
        except OSError as exc:
            raise ConfigError(f"model dir {model_dir} is not writable: {exc}") from exc
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(
                f"another builder is already running on {model_dir}; stop it first"
            ) from exc
        self._lock_file.write(f"{os.getpid()}\n")
        self._lock_file.flush()
        for leftover in cleanup_incomplete(model_dir):
            log.info("removed an incomplete snapshot left by a killed writer: %s", leftover.name)

    def _resume_point(self) -> dict[str, Any] | None:
        """The manifest of the newest readable snapshot, if any."""
        for version, path in reversed(list_snapshot_dirs(self.config.model_dir)):
            try:
                manifest = read_manifest(path)
            except SnapshotError as exc:
                log.warning("skipping unreadable snapshot: %s", exc)
                continue
            self.version = max(self.version, version)
            self._serving = self._gate_model(path, manifest)
            return manifest
        return None

    def _gate_model(self, path: Path, manifest: dict[str, Any]) -> FactorModel | None:
        if self.config.max_quality_drop is None:
            return None
        try:
            snapshot = load_snapshot(path, mmap=False)
        except SnapshotError as exc:
            log.warning("no quality gate until the next publication: %s", exc)
            return None
        params = manifest.get("params", {})
        return FactorModel(
            snapshot.item_ids,
            snapshot.arrays["item_factors"],
            float(params.get("alpha", 1.0)),
            float(params.get("regularization", 0.0)),
        )

    def _initial_assignment(self, partitions: list[int]) -> list[TopicPartition]:
        topic = self.config.topic
        manifest = self._resume_point()
        if manifest is None:
            start = OFFSET_BEGINNING if self.config.from_beginning else OFFSET_END
            where = "the beginning" if self.config.from_beginning else "the end"
            log.info("no snapshot in %s: reading %s from %s", self.config.model_dir, topic, where)
            return [TopicPartition(topic, p, start) for p in partitions]
        if manifest.get("topic") != topic:
            raise ConfigError(
                f"the snapshots in {self.config.model_dir} were built from topic "
                f"{manifest.get('topic')!r}, not {topic!r}: use another --model-dir"
            )
        recorded = {int(p): pos for p, pos in manifest.get("partitions", {}).items()}
        assignment = []
        for p in partitions:
            if p in recorded:
                assignment.append(TopicPartition(topic, p, int(recorded[p]["window_start"])))
                self.next_offset[p] = int(recorded[p]["window_start"])
            else:  # a partition created after the snapshot: all of it is new
                assignment.append(TopicPartition(topic, p, OFFSET_BEGINNING))
        until = {p: int(pos["next_offset"]) for p, pos in recorded.items()}
        self._replay_until = np.full(max(partitions, default=0) + 1, -1, dtype=np.int64)
        for p, offset in until.items():
            if p < self._replay_until.size:
                self._replay_until[p] = offset
        log.info(
            "resuming from snapshot v%d: rebuilding the window from %s, new events from %s",
            manifest["version"],
            {p: int(pos["window_start"]) for p, pos in recorded.items()},
            until,
        )
        return assignment

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume and retrain until ``stop`` is set; then shut down cleanly."""
        self._acquire_model_dir()
        consumer = self.kafka.consumer(**{"auto.offset.reset": "earliest"})
        try:
            partitions = topic_partitions(consumer, self.config.topic)
            assignment = self._initial_assignment(partitions)
            consumer.assign(assignment)
            known = set(partitions)
            next_refresh = time.monotonic() + _PARTITION_REFRESH_SECONDS
            while not stop.is_set():
                messages = consumer.consume(
                    self.config.batch_size, timeout=self.config.poll_timeout
                )
                if messages:
                    self.ingest(messages)
                self._reap_retrain()
                if self._due_for_retrain() and self._running is None:
                    self._start_retrain(consumer)
                if time.monotonic() >= next_refresh:
                    known = self._refresh_partitions(consumer, known)
                    next_refresh = time.monotonic() + _PARTITION_REFRESH_SECONDS
        finally:
            self._shutdown(consumer)

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
            consumer.incremental_assign(
                [TopicPartition(self.config.topic, p, OFFSET_BEGINNING) for p in added]
            )
        return known | current

    def ingest(self, messages: list[Message]) -> ParsedBatch:
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
        self.stats.consumed += len(messages)
        values = [m.value() for m in messages]
        partitions = np.fromiter((m.partition() for m in messages), np.int64, len(messages))
        offsets = np.fromiter((m.offset() for m in messages), np.int64, len(messages))
        stamps = np.fromiter((m.timestamp()[1] for m in messages), np.int64, len(messages))
        parsed = parse_values(values, max_id_bytes=self.config.max_id_bytes)
        if len(messages):
            self._advance_positions(partitions, offsets)
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
            limit = np.full(parts.size, -1, dtype=np.int64)
            inside = parts < self._replay_until.size
            limit[inside] = self._replay_until[parts[inside]]
            new = int((offsets[ok] >= limit).sum())
            self.stats.accepted += new
            self.stats.replayed += int(ok.size) - new
            self._new_since_retrain += new
        return parsed

    def _advance_positions(self, partitions: np.ndarray, offsets: np.ndarray) -> None:
        for p in np.unique(partitions).tolist():
            top = int(offsets[partitions == p].max()) + 1
            if top > self.next_offset.get(p, -1):
                self.next_offset[p] = top

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
        if self._dead_letters is not None and self.config.dead_letter_topic:
            for k, index in enumerate(parsed.rejected.tolist()):
                m = messages[index]
                headers: dict[str, str | bytes | None] = {
                    "reason": parsed.reason_of(k),
                    "source": f"{m.topic()}/{m.partition()}/{m.offset()}",
                }
                self._dead_letters.produce(
                    self.config.dead_letter_topic, value=m.value(), key=m.key(), headers=headers
                )
            self._dead_letters.poll(0)

    # -- retraining ----------------------------------------------------------------------------

    def _due_for_retrain(self) -> bool:
        fresh = self._new_since_retrain
        if fresh == 0:
            return False
        if self.config.retrain_every and fresh >= self.config.retrain_every:
            return True
        interval = self.config.retrain_interval
        return interval is not None and time.monotonic() - self._last_retrain_start >= interval

    def _positions(self, consumer: Any, matrix: WindowMatrix) -> dict[str, dict[str, int]]:
        """Per partition: where the window starts and the next offset to consume."""
        assigned = consumer.assignment()
        unknown = [tp for tp in assigned if tp.partition not in self.next_offset]
        if unknown:  # nothing consumed there yet: ask where the consumer stands
            for tp in consumer.position(unknown):
                if tp.offset >= 0:
                    self.next_offset[tp.partition] = tp.offset
                else:  # not resolved yet: the high watermark (a lower bound on some brokers)
                    _, high = consumer.get_watermark_offsets(tp, timeout=5.0, cached=False)
                    self.next_offset[tp.partition] = high
        positions = {}
        for p, nxt in sorted(self.next_offset.items()):
            start = matrix.partition_starts.get(p, nxt)
            positions[str(p)] = {"window_start": start, "next_offset": nxt}
        return positions

    def _holdout_size(self) -> int:
        """Events to hold out for the quality gate (0: no gate this time)."""
        config = self.config
        if config.max_quality_drop is None or self._serving is None:
            return 0
        size = min(config.gate_max_events, int(len(self.window) * config.gate_holdout))
        return size if size >= config.gate_min_events else 0

    def _start_retrain(self, consumer: Any) -> None:
        matrix = self.window.matrix(holdout=self._holdout_size())
        job = _RetrainJob(matrix, self._positions(consumer, matrix), self.stats.to_dict())
        self._new_since_retrain = 0
        self._last_retrain_start = time.monotonic()
        self.stats.retrains_started += 1
        self._running = self._worker.submit(self._retrain, job)
        if self.window.compact_vocabularies():
            log.debug("compacted the id vocabularies")

    def _reap_retrain(self) -> None:
        if self._running is not None and self._running.done():
            self._running = None

    def _retrain(self, job: _RetrainJob) -> None:
        """Worker thread: fit, check, publish, prune. Failures are logged, never published."""
        matrix = job.matrix
        params = self.config.params
        quality: dict[str, Any] | None = None
        try:
            if matrix.train_items is not None and self._serving is not None:
                factors, result = self._gated_fit(matrix)
                quality = result.to_dict()
                if not result.passed:
                    self.stats.quality_rejections += 1
                    log.warning(
                        "quality gate refused the new model: hit rate@10 %.4f on the newest %d "
                        "events vs %.4f for the serving model (allowed drop %.0f%%); "
                        "the serving model stays",
                        result.candidate,
                        result.holdout_events,
                        result.serving,
                        100 * result.max_drop,
                    )
                    return
            else:
                factors = train_als(matrix.user_items, params, should_stop=self._abort.is_set)
        except TrainingAborted as exc:
            log.info("retrain abandoned for shutdown (%s)", exc)
            return
        except TrainingError as exc:
            self.stats.retrains_failed += 1
            log.error("retrain failed, keeping the current model: %s", exc)
            return
        except Exception:
            self.stats.retrains_failed += 1
            log.exception("retrain failed unexpectedly, keeping the current model")
            return
        started = time.perf_counter()
        manifest = {
            "topic": self.config.topic,
            "partitions": job.partitions,
            "window": {
                "events": matrix.events,
                "users": len(matrix.user_ids),
                "items": len(matrix.item_ids),
                "pairs": int(matrix.user_items.nnz),
                "min_timestamp_ms": matrix.min_timestamp_ms,
                "max_timestamp_ms": matrix.max_timestamp_ms,
                "max_events": self.config.window_events,
                "max_age_seconds": self.config.window_seconds,
            },
            "params": self.config.params.to_dict(),
            "training_seconds": round(factors.seconds, 4),
            "quality": quality,
            # Counters as of this retrain's start, this publication included.
            "builder": {**job.stats, "retrains_published": self.stats.retrains_published + 1},
        }
        try:
            path = publish_snapshot(
                self.config.model_dir, self.version + 1, snapshot_arrays(matrix, factors), manifest
            )
        except Exception:
            self.stats.retrains_failed += 1
            log.exception("could not publish the snapshot; the current model stays")
            return
        self.version += 1
        self.stats.retrains_published += 1
        if self.config.max_quality_drop is not None:
            self._serving = FactorModel(
                list(matrix.item_ids), factors.item_factors, params.alpha, params.regularization
            )
        publish_seconds = time.perf_counter() - started
        pruned = prune_snapshots(self.config.model_dir, self.config.keep)
        log.info(
            "published %s: %d events, %d users, %d items; trained in %.2fs, written in %.2fs%s",
            path.name,
            matrix.events,
            len(matrix.user_ids),
            len(matrix.item_ids),
            factors.seconds,
            publish_seconds,
            f"; removed {len(pruned)} old snapshot(s)" if pruned else "",
        )

    def _gated_fit(self, matrix: WindowMatrix) -> tuple[TrainedFactors, GateResult]:
        """Fit without the newest events, judge against the serving model on them, then solve
        every user's factors on the whole window (so the published model knows them)."""
        assert matrix.train_items is not None and self._serving is not None
        params, max_drop = self.config.params, self.config.max_quality_drop or 0.0
        fitted = train_als(matrix.train_items, params, should_stop=self._abort.is_set)
        candidate = FactorModel(
            list(matrix.item_ids), fitted.item_factors, params.alpha, params.regularization
        )
        result = judge(
            candidate,
            self._serving,
            list(matrix.item_ids),
            matrix.train_items,
            matrix.holdout_users,
            matrix.holdout_items,
            max_drop=max_drop,
        )
        log.info(
            "quality gate: hit rate@10 %.4f (new) vs %.4f (serving) on the newest %d events",
            result.candidate,
            result.serving,
            result.holdout_events,
        )
        users = solve_users(fitted.item_factors, matrix.user_items, params)
        check_factors(users, fitted.item_factors, matrix.user_items.shape)
        return TrainedFactors(users, fitted.item_factors, fitted.seconds), result

    # -- shutdown ------------------------------------------------------------------------------

    def _shutdown(self, consumer: Any) -> None:
        self._abort.set()
        if self._running is not None:
            log.info("waiting for the running retrain to stop")
        self._worker.shutdown(wait=True, cancel_futures=True)
        try:
            consumer.close()
        except Exception as exc:
            log.debug("consumer close: %s", exc)
        if self._dead_letters is not None:
            left = self._dead_letters.flush(5.0)
            if left:
                log.warning("%d dead letters were not delivered before shutdown", left)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
