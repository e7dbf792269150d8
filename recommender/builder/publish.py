"""The builder's writing side: fit, judge against the serving model, publish, prune.

Runs in the retrain worker thread, on a copy of the window taken when the retrain started. A
retrain that fails, produces non-finite factors, or is refused by the quality gate is logged and
never published. Unreadable snapshots found in the store are moved aside (quarantined) and
publication continues past their numbers.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import SnapshotError, TrainingAborted, TrainingError
from ..quality import FactorModel, GateResult, judge
from ..snapshot import publish_snapshot
from ..training import TrainedFactors, check_factors, snapshot_arrays, solve_users, train_als
from ..window import WindowMatrix
from .config import BuilderConfig, BuilderStats

__all__ = ["Publisher", "RetrainJob", "ServingModel"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetrainJob:
    matrix: WindowMatrix
    partitions: dict[str, dict[str, Any]]
    stats: dict[str, Any]
    topic_id: str | None = None


@dataclass(frozen=True, slots=True)
class ServingModel:
    """What the quality gate compares against: the newest published model, and the next offset
    per partition it had consumed (events at or after those it has never seen)."""

    model: FactorModel
    positions: dict[int, int]


def _positions(partitions: dict[str, Any]) -> dict[int, int]:
    return {int(p): int(pos["next_offset"]) for p, pos in partitions.items()}


class Publisher:
    """Owns the store's writing side and the model the gate compares against."""

    def __init__(self, config: BuilderConfig, stats: BuilderStats, abort: threading.Event) -> None:
        self.config = config
        self.store = config.store
        self.stats = stats
        self._abort = abort
        self.version = 0
        self.serving: ServingModel | None = None

    # -- start ---------------------------------------------------------------------------------

    def resume(self) -> dict[str, Any] | None:
        """The manifest of the newest snapshot that loads and verifies, if any. Unreadable newer
        ones are quarantined (moved aside once, logged, counted), never a reason to stop."""
        for version in reversed(self.store.versions()):
            try:
                snapshot = self.store.load(version, mmap=False)
            except SnapshotError as exc:
                self._quarantine(version, str(exc))
                continue
            manifest = snapshot.manifest
            params = manifest.get("params", {})
            self.serving = ServingModel(
                FactorModel(
                    snapshot.item_ids,
                    snapshot.arrays["item_factors"],
                    float(params.get("alpha", 1.0)),
                    float(params.get("regularization", 0.0)),
                ),
                _positions(manifest.get("partitions", {})),
            )
            return manifest
        return None

    def _quarantine(self, version: int, reason: str) -> None:
        self.stats.quarantined_snapshots += 1
        try:
            where = self.store.quarantine(version, reason)
        except SnapshotError as exc:
            log.error(
                "unreadable snapshot v%d (%s) could not be moved aside: %s", version, reason, exc
            )
            return
        log.error("moved unreadable snapshot v%d aside to %s: %s", version, where, reason)

    # -- retrain (worker thread) ---------------------------------------------------------------

    def holdout_from(self) -> dict[int, int] | None:
        """Offsets from which events are unseen by the serving model (None: no gate)."""
        if self.config.max_quality_drop is None or self.serving is None:
            return None
        return self.serving.positions

    def run(self, job: RetrainJob) -> None:
        """Fit, check, judge, publish, prune. Failures are logged, never published."""
        matrix = job.matrix
        params = self.config.params
        quality: dict[str, Any] | None = None
        try:
            if matrix.train_items is not None and self.serving is not None:
                factors, result = self._gated_fit(matrix, self.serving)
                quality = result.to_dict()
                if not result.passed:
                    self.stats.quality_rejections += 1
                    log.warning(
                        "quality gate refused the new model: hit rate@10 %.4f on %d events the "
                        "serving model has not seen vs %.4f for it (allowed drop %.0f%%); "
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
        self._publish(job, factors, quality)

    def _publish(
        self, job: RetrainJob, factors: TrainedFactors, quality: dict[str, Any] | None
    ) -> None:
        matrix, config = job.matrix, self.config
        started = time.perf_counter()
        manifest = {
            "topic": config.topic,
            "topic_id": job.topic_id,
            "partitions": job.partitions,
            "window": {
                "events": matrix.events,
                "users": len(matrix.user_ids),
                "items": len(matrix.item_ids),
                "pairs": int(matrix.user_items.nnz),
                "min_timestamp_ms": matrix.min_timestamp_ms,
                "max_timestamp_ms": matrix.max_timestamp_ms,
                "max_events": config.window_events,
                "max_age_seconds": config.window_seconds,
            },
            "params": config.params.to_dict(),
            "training_seconds": round(factors.seconds, 4),
            "quality": quality,
            # Counters as of this retrain's start, this publication included.
            "builder": {**job.stats, "retrains_published": self.stats.retrains_published + 1},
        }
        version = max(self.version, self.store.highest_version()) + 1
        try:
            where = publish_snapshot(
                self.store, version, snapshot_arrays(matrix, factors), manifest
            )
        except Exception:
            self.stats.retrains_failed += 1
            log.exception("could not publish the snapshot; the current model stays")
            return
        self.version = version
        self.stats.retrains_published += 1
        params = config.params
        self.serving = ServingModel(
            FactorModel(
                list(matrix.item_ids), factors.item_factors, params.alpha, params.regularization
            ),
            _positions(job.partitions),
        )
        publish_seconds = time.perf_counter() - started
        try:
            pruned = self.store.prune(config.keep)
        except Exception as exc:  # retention must never cost a publication
            log.warning("could not remove old snapshots: %s", exc)
            pruned = []
        log.info(
            "published v%d to %s: %d events, %d users, %d items; trained in %.2fs, written in "
            "%.2fs%s",
            version,
            where,
            matrix.events,
            len(matrix.user_ids),
            len(matrix.item_ids),
            factors.seconds,
            publish_seconds,
            f"; removed {len(pruned)} old snapshot(s)" if pruned else "",
        )

    def _gated_fit(
        self, matrix: WindowMatrix, serving: ServingModel
    ) -> tuple[TrainedFactors, GateResult]:
        """Fit without the held-out events, judge against the serving model on them, then solve
        every user's factors on the whole window (so the published model knows them)."""
        assert matrix.train_items is not None
        params, max_drop = self.config.params, self.config.max_quality_drop or 0.0
        fitted = train_als(matrix.train_items, params, should_stop=self._abort.is_set)
        candidate = FactorModel(
            list(matrix.item_ids), fitted.item_factors, params.alpha, params.regularization
        )
        result = judge(
            candidate,
            serving.model,
            list(matrix.item_ids),
            matrix.train_items,
            matrix.holdout_users,
            matrix.holdout_items,
            max_drop=max_drop,
        )
        log.info(
            "quality gate: hit rate@10 %.4f (new) vs %.4f (serving) on %d unseen events",
            result.candidate,
            result.serving,
            result.holdout_events,
        )
        users = solve_users(fitted.item_factors, matrix.user_items, params)
        check_factors(users, fitted.item_factors, matrix.user_items.shape)
        return TrainedFactors(users, fitted.item_factors, fitted.seconds), result
