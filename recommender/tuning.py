"""Self-tuning: search ALS settings on the builder's own window, adopt a setting on evidence.

The window's events are split per user by time: each user's newest fifth (at least one event,
for users with two or more) is validation, the rest trains, as ``recommender evaluate`` selects
settings. The users with something to find in validation are split in two halves:

- the **search** half scores trials (NDCG@10 of their validation items, trained on the rest);
- the **confirmation** half is used once, at the end: the best trial and the current setting are
  fitted again and compared user by user with a paired bootstrap; the best is adopted only when
  the whole interval of the difference is above zero *and* the gain is at least ``min_gain``
  (2 %) of the current score, so near-equal settings never churn. The confirmation users played
  no part in choosing the best trial, so its score there is not inflated by the search (winner's
  curse).

The search is optuna's TPE sampler with a median pruner (intermediate NDCG after a few ALS
iterations: a poor setting is stopped early), warm-started with the current setting and the last
best. Pinned hyper-parameters stay as given. Pure: numpy, scipy, implicit, optuna; no Kafka.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .errors import TrainingAborted, TrainingError
from .ranking import PairedComparison, paired_bootstrap, per_user_metrics, top_k_rows
from .training import AlsParams, TrainedFactors, train_als
from .window import WindowEvents, pair_matrix

__all__ = ["SearchSpace", "TrialRecord", "TuningOutcome", "ValidationSplit", "split", "tune"]

log = logging.getLogger(__name__)

TUNABLE: Final = ("factors", "regularization", "alpha", "iterations")
_CHECKPOINTS: Final = (3, 7)  # ALS iterations after which a trial reports to the pruner
IntArray = npt.NDArray[np.int64]


class _Pruned(TrainingAborted):
    """The pruner stopped a trial (raised from inside the ALS iteration callback)."""


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Ranges searched (log scale for all four); ``pinned`` values are never changed."""

    factors: tuple[int, int] = (8, 192)
    regularization: tuple[float, float] = (1e-3, 100.0)
    alpha: tuple[float, float] = (0.1, 100.0)
    iterations: tuple[int, int] = (5, 25)
    pinned: Mapping[str, float | int] = field(default_factory=dict)

    def suggest(self, trial: Any, base: AlsParams) -> AlsParams:
        values: dict[str, Any] = {}
        for name in TUNABLE:
            if name in self.pinned:
                values[name] = self.pinned[name]
                continue
            low, high = getattr(self, name)
            if name in ("factors", "iterations"):
                values[name] = trial.suggest_int(name, int(low), int(high), log=True)
            else:
                values[name] = trial.suggest_float(name, float(low), float(high), log=True)
        return AlsParams(**values, random_seed=base.random_seed)

    def clamp(self, params: AlsParams) -> dict[str, Any]:
        """``params`` as trial values inside the ranges (for warm starts)."""
        out: dict[str, Any] = {}
        for name in TUNABLE:
            if name in self.pinned:
                continue
            low, high = getattr(self, name)
            out[name] = type(low)(min(max(getattr(params, name), low), high))
        return out


@dataclass(frozen=True, slots=True)
class ValidationSplit:
    """Training matrix and validation truth (users x items of the window), and who scores what."""

    train: sp.csr_matrix
    truth: sp.csr_matrix
    search_users: IntArray
    confirm_users: IntArray

    @property
    def events(self) -> int:
        return int(self.truth.nnz)


def split(events: WindowEvents, *, fraction: float = 0.2, seed: int = 0) -> ValidationSplit:
    """Each user's newest ``fraction`` of events (at least one, for users with two or more)
    is validation; users with liked validation items they did not train on are split in two."""
    rng = np.random.default_rng(seed)
    n = len(events)
    order = np.lexsort((rng.permutation(n), events.timestamps, events.users))
    users = events.users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if n else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, n])
    held = np.where(
        counts >= 2, np.minimum(np.maximum(1, np.floor(counts * fraction)), counts - 1), 0
    )
    position = np.arange(n) - np.repeat(starts, counts)
    is_validation = np.zeros(n, dtype=bool)
    is_validation[order] = position >= np.repeat(counts - held, counts)
    shape = (len(events.user_ids), len(events.item_ids))
    train_mask = ~is_validation
    train = pair_matrix(
        events.users[train_mask], events.items[train_mask], events.weights[train_mask], shape
    )
    liked = is_validation & (events.weights > 0)
    truth = sp.csr_matrix(
        (np.ones(int(liked.sum())), (events.users[liked], events.items[liked])), shape=shape
    )
    truth.sum_duplicates()
    truth.data[:] = 1.0
    truth = truth - truth.multiply(train != 0)
    truth.eliminate_zeros()
    judged = rng.permutation(np.flatnonzero(np.diff(truth.indptr) > 0))
    half = judged.size // 2
    return ValidationSplit(train, truth, np.sort(judged[:half]), np.sort(judged[half:]))


def _per_user_ndcg(
    factors: TrainedFactors, data: ValidationSplit, users: IntArray, k: int
) -> npt.NDArray[np.float64]:
    """NDCG@k per user: scored by the trained user factors, train items excluded."""
    items = np.asarray(factors.item_factors)
    out = np.empty(users.size)
    for lo in range(0, users.size, 512):
        chunk = users[lo : lo + 512]
        scores = np.asarray(factors.user_factors)[chunk] @ items.T
        seen = data.train[chunk]
        rows = np.repeat(np.arange(chunk.size), np.diff(seen.indptr))
        scores[rows, seen.indices] = -np.inf
        out[lo : lo + chunk.size] = per_user_metrics(top_k_rows(scores, k), data.truth[chunk], k)[0]
    return out


@dataclass(frozen=True, slots=True)
class TrialRecord:
    number: int
    params: dict[str, Any]
    score: float | None
    state: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "params": self.params,
            "ndcg": None if self.score is None else round(self.score, 5),
            "state": self.state,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class TuningOutcome:
    """What one tuning session did and decided (goes into manifests and status)."""

    started_at: float
    seconds: float
    budget_seconds: float
    current: AlsParams
    best: AlsParams
    adopted: bool
    reason: str
    trials: list[TrialRecord]
    comparison: PairedComparison | None
    validation: dict[str, int]

    def to_dict(self, *, trail: int = 12) -> dict[str, Any]:
        done = [t for t in self.trials if t.score is not None and t.state == "complete"]
        best_first = sorted(done, key=lambda t: -(t.score or 0.0))[:trail]
        return {
            "started_at": round(self.started_at, 3),
            "seconds": round(self.seconds, 2),
            "budget_seconds": self.budget_seconds,
            "trials": len(self.trials),
            "pruned": sum(t.state == "pruned" for t in self.trials),
            "current": self.current.to_dict(),
            "best": self.best.to_dict(),
            "adopted": self.adopted,
            "reason": self.reason,
            "confirmation": None if self.comparison is None else self.comparison.to_dict(),
            "validation": self.validation,
            "trail": [t.to_dict() for t in best_first],
        }


def tune(
    events: WindowEvents,
    *,
    current: AlsParams,
    space: SearchSpace | None = None,
    budget_seconds: float = 90.0,
    max_trials: int = 500,
    warm_start: Sequence[AlsParams] = (),
    k: int = 10,
    seed: int = 0,
    max_search_users: int = 1500,
    min_users: int = 20,
    pause: Callable[[], None] = lambda: None,
    should_stop: Callable[[], bool] = lambda: False,
    num_threads: int = 1,
    min_gain: float = 0.02,
) -> TuningOutcome:
    """Search settings for ``events`` within ``budget_seconds`` of search time (time spent in
    ``pause`` does not count), then decide whether the best beats ``current`` (see the module
    documentation). ``pause`` is called between ALS iterations: it may block (the builder makes
    tuning wait while a retrain runs); ``should_stop`` ends the search early."""
    import optuna

    space = space or SearchSpace()
    started_at, started = time.time(), time.perf_counter()
    data = split(events, seed=seed)
    validation = {
        "events": data.events,
        "search_users": int(data.search_users.size),
        "confirm_users": int(data.confirm_users.size),
    }

    def outcome(best: AlsParams, adopted: bool, reason: str, trials: list[TrialRecord],
                comparison: PairedComparison | None = None) -> TuningOutcome:  # fmt: skip
        return TuningOutcome(
            started_at,
            time.perf_counter() - started,
            budget_seconds,
            current,
            best,
            adopted,
            reason,
            trials,
            comparison,
            validation,
        )

    if data.search_users.size < min_users or data.confirm_users.size < min_users:
        return outcome(
            current,
            False,
            f"too little to tune on: {data.search_users.size + data.confirm_users.size} users "
            f"with validation items (needs {2 * min_users})",
            [],
        )
    search_users = data.search_users
    if search_users.size > max_search_users:
        search_users = np.sort(
            np.random.default_rng(seed).choice(search_users, max_search_users, replace=False)
        )
    paused = [0.0]

    def wait() -> None:
        before = time.perf_counter()
        pause()
        paused[0] += time.perf_counter() - before

    def fit(
        params: AlsParams, report: Callable[[int, TrainedFactors], None] | None = None
    ) -> TrainedFactors:
        def after(iteration: int, factors: TrainedFactors) -> None:
            wait()
            if should_stop():
                raise TrainingAborted("tuning stopped")
            if report is not None:
                report(iteration, factors)

        return train_als(data.train, params, num_threads=num_threads, after_iteration=after)

    records: list[TrialRecord] = []

    def objective(trial: Any) -> float:
        params = space.suggest(trial, current)
        began = time.perf_counter()

        def report(iteration: int, factors: TrainedFactors) -> None:
            if iteration in _CHECKPOINTS and iteration < params.iterations:
                trial.report(
                    float(np.nanmean(_per_user_ndcg(factors, data, search_users, k))), iteration
                )
                if trial.should_prune():
                    raise _Pruned(f"pruned after {iteration} iterations")

        try:
            factors = fit(params, report)
        except _Pruned as exc:
            records.append(
                TrialRecord(
                    trial.number, params.to_dict(), None, "pruned", time.perf_counter() - began
                )
            )
            raise optuna.TrialPruned() from exc
        except TrainingError as exc:
            records.append(
                TrialRecord(
                    trial.number, params.to_dict(), None, "failed", time.perf_counter() - began
                )
            )
            if isinstance(exc, TrainingAborted):
                trial.study.stop()
            raise optuna.TrialPruned() from exc
        score = float(np.nanmean(_per_user_ndcg(factors, data, search_users, k)))
        records.append(
            TrialRecord(
                trial.number, params.to_dict(), score, "complete", time.perf_counter() - began
            )
        )
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=10),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=0),
    )
    seen: set[tuple[Any, ...]] = set()
    for params in (current, *warm_start):
        values = space.clamp(params)
        key = tuple(sorted(values.items()))
        if values and key not in seen:
            seen.add(key)
            study.enqueue_trial(values)

    def budget_left(study: Any, trial: Any) -> None:
        if time.perf_counter() - started - paused[0] >= budget_seconds or should_stop():
            study.stop()

    if any(name not in space.pinned for name in TUNABLE):
        study.optimize(objective, n_trials=max_trials, callbacks=[budget_left], catch=())
    complete = [
        t
        for t in records
        if t.state == "complete" and t.score is not None and math.isfinite(t.score)
    ]
    if not complete:
        return outcome(current, False, "no trial completed within the budget", records)
    best_record = max(complete, key=lambda t: t.score or 0.0)
    best = AlsParams(**{**best_record.params, "random_seed": current.random_seed})
    if best == current:
        return outcome(current, False, "the current setting is still the best found", records)
    try:
        scores = {
            name: _per_user_ndcg(fit(params), data, data.confirm_users, k)
            for name, params in (("best", best), ("current", current))
        }
    except TrainingError as exc:
        return outcome(current, False, f"confirmation did not finish: {exc}", records)
    comparison = paired_bootstrap(scores["best"], scores["current"], seed=seed)
    significant = comparison.low > 0
    better = significant and comparison.relative_change >= min_gain
    verdict = (
        "better beyond the noise"
        if better
        else f"a gain below {min_gain:.0%}"
        if significant
        else "not better beyond the noise"
    )
    reason = (
        f"NDCG@{k} {comparison.candidate:.4f} vs {comparison.baseline:.4f} for the current "
        f"setting on {comparison.users} confirmation users, difference interval "
        f"[{comparison.low:+.4f}, {comparison.high:+.4f}]: {verdict}"
    )
    return outcome(best, better, reason, records, comparison)
