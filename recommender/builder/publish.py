"""The builder's writing side: fit, judge against the serving model, publish, prune.

Runs in the retrain worker thread, on a copy of the window taken when the retrain started. A
retrain that fails, produces non-finite factors, or is refused by the quality gate is logged and
never published; a refusal is retried after ``--gate-retry`` seconds even if no event arrives,
and a serving model older than ``--max-model-age`` is replaced even if the gate refuses (with a
warning and a count), so a refusal can never freeze the service. Unreadable snapshots found in
the store are moved aside (quarantined) and publication continues past their numbers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import LockLost, TrainingAborted, TrainingError, one_line
from ..items import Catalog
from ..models import FittedModel, ModelFamily, Setting, make_family
from ..models.als_training import AlsParams
from ..quality import GateModel, GateVerdict, compare_models
from ..snapshot import publish_snapshot, snapshot_arrays
from ..store import WriterLease
from ..window import WindowEvents, WindowMatrix
from .config import BuilderConfig, BuilderStats
from .manifest import retrain_manifest
from .ranking import RankerStage
from .resume import ServingModel, find_resumable, positions_of

__all__ = ["ParamsSource", "Publisher", "RetrainJob", "ServingModel"]  # ServingModel: resume

log = logging.getLogger(__name__)

ParamsSource = Literal["default", "pinned", "tuned"]


@dataclass(frozen=True, slots=True)
class RetrainJob:
    matrix: WindowMatrix
    partitions: dict[str, dict[str, Any]]
    stats: dict[str, Any]
    topic_id: str | None = None
    setting: Setting | None = None  # None: the publisher's current setting
    params_source: str | None = None
    #: Started before the backlog was read (``--partial-models``): marked so in the manifest.
    partial: bool = False
    #: The window's events, for the ranking stage (None: ``--ranker off``).
    events: WindowEvents | None = None


class Publisher:
    """Owns the store's writing side, the current settings, and the model the gate compares
    against."""

    def __init__(
        self,
        config: BuilderConfig,
        stats: BuilderStats,
        abort: threading.Event,
        *,
        catalogue: Callable[[], Catalog] | None = None,
    ) -> None:
        self.config = config
        self.store = config.store
        self.stats = stats
        self._abort = abort
        self.version = 0
        self.serving: ServingModel | None = None
        self.setting: Setting = config.initial_setting()
        pinned = bool(config.pinned) or config.model != "auto"
        self.params_source: ParamsSource = "pinned" if pinned else "default"
        self._families: dict[str, ModelFamily] = {}
        self.ranker = RankerStage(config, stats, catalogue=catalogue)
        #: Set while no retrain runs: tuning waits on it, so it never delays a due retrain.
        self.idle = threading.Event()
        self.idle.set()
        #: A retrain is wanted even without new events: new settings, or a refusal to retry.
        self.retrain_at: float | None = None
        self.consecutive_refusals = 0
        self.last_verdict: GateVerdict | None = None
        #: The tuner's last outcome, recorded in manifests (set by the tuner).
        self.tuning: dict[str, Any] | None = None
        self.changed = threading.Event()  # something a status document would show changed
        #: The writer lock held while running (checked at every commit; set by the builder).
        self.lease: WriterLease | None = None
        #: The store's id, recorded in every manifest: readers see a store whose history changed.
        self.store_id: str | None = None

    # -- start ---------------------------------------------------------------------------------

    def resume(self) -> dict[str, Any] | None:
        """The manifest of the snapshot to resume from, if any (see :mod:`.resume`); the
        settings it was trained with become the current ones (a restart keeps a tuned setting)."""
        snapshot = find_resumable(self.store, self.config.topic, self.stats)
        if snapshot is None:
            return None
        self.serving = ServingModel.of(snapshot)
        self._resume_settings(snapshot.manifest)
        return snapshot.manifest

    def _resume_settings(self, manifest: dict[str, Any]) -> None:
        if manifest.get("params_source") != "tuned" or not self.config.tune:
            return
        section = manifest.get("model") or {"family": "als", "params": manifest.get("params")}
        try:
            tuned = self.config.setting_for(str(section["family"]), section["params"])
        except (KeyError, TypeError, ValueError):
            return
        if tuned is None:  # a family the operator has pinned away from
            return
        self.setting = tuned
        self.params_source = "tuned"
        self.tuning = manifest.get("tuning")
        log.info(
            "resuming with the tuned setting of snapshot v%d: %s %s",
            manifest["version"],
            tuned.family,
            dict(tuned.params),
        )

    @property
    def params(self) -> AlsParams:
        """The current ALS settings (ALS's defaults while another family serves)."""
        if self.setting.family == "als":
            return AlsParams(**self.setting.params)
        return self.config.params

    def family(self, name: str) -> ModelFamily:
        if name not in self._families:
            self._families[name] = make_family(name, device=self.config.device)
        return self._families[name]

    # -- settings (from the tuner) -------------------------------------------------------------

    def adopt(self, setting: Setting | AlsParams) -> None:
        """Use ``setting`` from the next retrain on, and retrain now (even with no new events)."""
        if isinstance(setting, AlsParams):
            setting = Setting("als", setting.to_dict())
        self.setting = setting
        self.params_source = "tuned"
        self.retrain_at = time.monotonic()
        self.changed.set()

    # -- retrain (worker thread) ---------------------------------------------------------------

    def holdout_from(self) -> dict[int, int] | None:
        """Offsets from which events are unseen by the serving model (None: no gate)."""
        if self.config.max_quality_drop is None or self.serving is None or self.serving.partial:
            return None
        return self.serving.positions

    def run(self, job: RetrainJob) -> None:
        """Fit, check, judge, publish, prune. Failures are logged, never published."""
        self.idle.clear()
        try:
            self._run(job)
        finally:
            self.idle.set()
            self.changed.set()

    def _run(self, job: RetrainJob) -> None:
        matrix = job.matrix
        setting = self.config.affordable(
            job.setting or self.setting, matrix.user_items.shape, int(matrix.user_items.nnz)
        )
        family = self.family(setting.family)
        stop = self._abort.is_set
        verdict: GateVerdict | None = None
        forced = False
        serving = self.serving
        if self.config.max_quality_drop is not None and serving is not None and serving.partial:
            verdict = GateVerdict(
                "abstain",
                "the serving model was built from part of the backlog (--partial-models): it is "
                "not held against this one",
                "NDCG@10",
                0,
                max_drop=self.config.max_quality_drop,
            )
        started = time.perf_counter()
        try:
            if self.holdout_from() is not None and matrix.train_items is None:
                verdict = GateVerdict(
                    "abstain",
                    "no event in the window that the serving model has not seen",
                    "NDCG@10",
                    0,
                    max_drop=self.config.max_quality_drop or 0.0,
                )
                self.stats.gate_abstentions += 1
            if matrix.train_items is not None and self.serving is not None:
                judged = family.fit(
                    matrix.training_data(holdout=True), setting.params, should_stop=stop
                )
                verdict = self._judge(matrix, judged, self.serving)
                if verdict.refused:
                    forced = self._serving_too_old(verdict)
                    if not forced:
                        self._refused(verdict)
                        return
                elif verdict.decision == "abstain":
                    self.stats.gate_abstentions += 1
                # Bring the judged model up to the whole window (ALS: one user step).
                fitted = family.refit(
                    judged, matrix.training_data(), setting.params, should_stop=stop
                )
            else:
                fitted = family.fit(matrix.training_data(), setting.params, should_stop=stop)
            ranker = self.ranker.parts(
                job.events, family, setting, first=self.version == 0, should_stop=stop
            )
        except TrainingAborted as exc:
            log.info("retrain abandoned for shutdown (%s)", exc)
            return
        except TrainingError as exc:
            self.stats.retrains_failed += 1
            log.error("retrain failed, keeping the current model: %s", exc)
            return
        except Exception as exc:
            self.stats.retrains_failed += 1
            log.error("retrain failed unexpectedly, keeping the current model: %s", one_line(exc))
            log.debug("retrain failure", exc_info=True)
            return
        self.last_verdict = verdict
        quality = None if verdict is None else {**verdict.to_dict(), "forced": forced}
        self._publish(job, fitted, setting, quality, time.perf_counter() - started, ranker)

    def _judge(
        self, matrix: WindowMatrix, fitted: FittedModel, serving: ServingModel
    ) -> GateVerdict:
        assert matrix.train_items is not None
        train = matrix.train_items
        candidate = GateModel(
            list(matrix.item_ids),
            fitted,
            np.bincount(train.indices[train.data > 0], minlength=train.shape[1]),
        )
        config = self.config
        verdict = compare_models(
            candidate,
            serving.model,
            list(matrix.item_ids),
            train,
            matrix.holdout_users,
            matrix.holdout_items,
            matrix.holdout_weights,
            max_drop=config.max_quality_drop or 0.0,
            min_users=config.gate_min_users,
            min_events=config.gate_min_events,
            train_sequences=matrix.train_sequences,
        )
        log.info(
            "quality gate (%s vs serving %s): %s: %s",
            candidate.family,
            serving.model.family,
            verdict.decision,
            verdict.reason,
        )
        return verdict

    def _serving_too_old(self, verdict: GateVerdict) -> bool:
        limit = self.config.max_model_age
        age = time.time() - self.serving.created_at if self.serving is not None else 0.0
        if limit is None or age <= limit:
            return False
        self.stats.forced_publications += 1
        log.warning(
            "quality gate refused the new model (%s), but the serving model is %.0f s old, older "
            "than --max-model-age %.0f s: publishing the new one anyway",
            verdict.reason,
            age,
            limit,
        )
        return True

    def _refused(self, verdict: GateVerdict) -> None:
        self.stats.quality_rejections += 1
        self.consecutive_refusals += 1
        self.last_verdict = verdict
        retry = self.config.retry_seconds
        self.retrain_at = time.monotonic() + retry
        log.warning(
            "quality gate refused the new model (%d in a row): %s; the serving model stays, "
            "retrying in %.0f s",
            self.consecutive_refusals,
            verdict.reason,
            retry,
        )

    def _publish(
        self,
        job: RetrainJob,
        fitted: FittedModel,
        setting: Setting,
        quality: dict[str, Any] | None,
        seconds: float,
        ranker: tuple[dict[str, np.ndarray], dict[str, Any] | None] = ({}, None),
    ) -> None:
        matrix, config = job.matrix, self.config
        started = time.perf_counter()
        manifest = retrain_manifest(
            config,
            matrix,
            setting,
            params_source=job.params_source or self.params_source,
            partitions=job.partitions,
            topic_id=job.topic_id,
            tuning=self.tuning,
            training_seconds=seconds,
            quality=quality,
            partial=job.partial,
            store_id=self.store_id,
            builder={
                **job.stats,
                "retrains_published": self.stats.retrains_published + 1,
                "quality_rejections": self.stats.quality_rejections,
                "forced_publications": self.stats.forced_publications,
                "gate_abstentions": self.stats.gate_abstentions,
                "consecutive_refusals_before": self.consecutive_refusals,
            },
        )
        try:
            version = max(self.version, self.store.highest_version()) + 1
            arrays = snapshot_arrays(matrix, fitted, extra=ranker[0])
            if ranker[1] is not None:
                manifest["ranker"] = ranker[1]
            where = publish_snapshot(self.store, version, arrays, manifest, lease=self.lease)
        except Exception as exc:
            self.stats.retrains_failed += 1
            self.stats.publication_failures += 1
            if isinstance(exc, LockLost) and exc.taken:
                log.error("not published: %s", exc)  # the builder stops: see ModelBuilder.run
                return
            retry = self.config.retry_seconds
            self.retrain_at = time.monotonic() + retry
            log.error(
                "could not publish the snapshot to %s (%s); the current model stays, retrying "
                "in %.0f s",
                self.store.location,
                one_line(exc),
                retry,
            )
            log.debug("publication failure", exc_info=True)
            return
        self.version = version
        self.stats.retrains_published += 1
        self.consecutive_refusals = 0
        self.serving = ServingModel(
            GateModel(list(matrix.item_ids), fitted, matrix.popularity),
            positions_of(job.partitions),
            time.time(),
            partial=job.partial,
        )
        publish_seconds = time.perf_counter() - started
        try:
            pruned = self.store.prune(config.keep)
        except Exception as exc:  # retention must never cost a publication
            log.warning("could not remove old snapshots: %s", exc)
            pruned = []
        log.info(
            "published v%d to %s: %s, %d events, %d users, %d items; trained in %.2fs, written "
            "in %.2fs%s",
            version,
            where,
            setting.family,
            matrix.events,
            len(matrix.user_ids),
            len(matrix.item_ids),
            seconds,
            publish_seconds,
            f"; removed {len(pruned)} old snapshot(s)" if pruned else "",
        )

    def status(self) -> dict[str, Any]:
        """The gate's and the settings' part of the builder's status document."""
        verdict = self.last_verdict
        return {
            "model": self.setting.to_dict(),
            "params": dict(self.setting.params),
            "params_source": self.params_source,
            "pinned": sorted(self.config.pinned),
            "gate": {
                "enabled": self.config.max_quality_drop is not None,
                "consecutive_refusals": self.consecutive_refusals,
                "refusals": self.stats.quality_rejections,
                "forced_publications": self.stats.forced_publications,
                "abstentions": self.stats.gate_abstentions,
                "last": None if verdict is None else verdict.to_dict(),
            },
        }
