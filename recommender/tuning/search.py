"""Self-tuning: search model families and their settings on the builder's own window, adopt a
setting on evidence.

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

The search is optuna's TPE sampler: the family is a categorical choice and each family's
settings a conditional space (:meth:`recommender.models.ModelFamily.suggest`); ALS trials report
intermediate NDCG after a few iterations to a median pruner, so a poor ALS setting is stopped
early. A family whose fit would exceed the memory budget on this window is left out, with the
reason in the outcome. The search is warm-started with the current setting, the last best and
then every affordable family's defaults (chosen across every data set: often the best a short
first session can find); pinned ALS flags stay as given. The budget is wall-clock time: a trial
whose fit is expected to overrun what is left is not started, and a running fit is stopped at
its next checkpoint once the budget is spent. Pure: numpy, scipy, implicit, optuna; no Kafka.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from ..errors import TrainingAborted, TrainingError
from ..models import FittedModel, Setting, make_family
from ..models.als import AlsModel
from ..models.als_training import AlsParams, TrainedFactors, train_als
from ..user_metrics import PairedComparison, paired_bootstrap
from ..window import WindowEvents
from .space import TUNABLE, SearchSpace
from .validation import ValidationSplit, per_user_ndcg, split

__all__ = ["TrialRecord", "TuningOutcome", "tune"]

log = logging.getLogger(__name__)

_CHECKPOINTS: Final = (3, 7)  # ALS iterations after which a trial reports to the pruner


class _Pruned(TrainingAborted):
    """The pruner stopped a trial (raised from inside the ALS iteration callback)."""


@dataclass(frozen=True, slots=True)
class TrialRecord:
    number: int
    family: str
    params: dict[str, Any]
    score: float | None
    state: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "family": self.family,
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
    current: Setting
    best: Setting
    adopted: bool
    reason: str
    trials: list[TrialRecord]
    comparison: PairedComparison | None
    validation: dict[str, int]
    excluded: dict[str, str] = field(default_factory=dict)

    def to_dict(self, *, trail: int = 12) -> dict[str, Any]:
        done = [t for t in self.trials if t.score is not None and t.state == "complete"]
        best_first = sorted(done, key=lambda t: -(t.score or 0.0))[:trail]
        by_family: dict[str, float] = {}
        for t in done:
            by_family[t.family] = max(by_family.get(t.family, 0.0), t.score or 0.0)
        return {
            "started_at": round(self.started_at, 3),
            "seconds": round(self.seconds, 2),
            "budget_seconds": self.budget_seconds,
            "trials": len(self.trials),
            "pruned": sum(t.state == "pruned" for t in self.trials),
            # Not started: expected to overrun what was left of the budget.
            "skipped": sum(t.state == "skipped" for t in self.trials),
            "current": self.current.to_dict(),
            "best": self.best.to_dict(),
            "adopted": self.adopted,
            "reason": self.reason,
            "confirmation": None if self.comparison is None else self.comparison.to_dict(),
            "validation": self.validation,
            "best_by_family": {f: round(v, 5) for f, v in sorted(by_family.items())},
            "excluded_families": self.excluded,
            "trail": [t.to_dict() for t in best_first],
        }


def tune(
    events: WindowEvents,
    *,
    current: Setting,
    space: SearchSpace | None = None,
    budget_seconds: float = 90.0,
    max_trials: int = 500,
    warm_start: Sequence[Setting] = (),
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
    documentation). ``pause`` is called between ALS iterations and before other fits: it may
    block (the builder makes tuning wait while a retrain runs); ``should_stop`` ends the search
    early."""
    import optuna

    space = space or SearchSpace()
    started_at, started = time.time(), time.perf_counter()
    data = split(events, seed=seed)
    validation = {
        "events": data.events,
        "search_users": int(data.search_users.size),
        "confirm_users": int(data.confirm_users.size),
    }
    excluded = _over_budget(space, data, space.max_seconds or budget_seconds / 3)
    allowed = tuple(f for f in space.families if f not in excluded)
    for family, why in excluded.items():
        log.info("tuning leaves %s out: %s", family, why)

    def outcome(best: Setting, adopted: bool, reason: str, trials: list[TrialRecord],
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
            excluded,
        )

    if data.search_users.size < min_users or data.confirm_users.size < min_users:
        return outcome(
            current,
            False,
            f"too little to tune on: {data.search_users.size + data.confirm_users.size} users "
            f"with validation items (needs {2 * min_users})",
            [],
        )
    if not allowed:
        return outcome(current, False, "every family is over the memory budget", [])
    space = SearchSpace(
        families=allowed,
        pinned=space.pinned,
        max_bytes=space.max_bytes,
        max_seconds=space.max_seconds,
    )
    search_users = data.search_users
    if search_users.size > max_search_users:
        search_users = np.sort(
            np.random.default_rng(seed).choice(search_users, max_search_users, replace=False)
        )
    paused = [0.0]

    def spent() -> float:
        return time.perf_counter() - started - paused[0]

    searching = [True]  # the budget bounds the search; the confirmation's two fits run anyway

    def stopping() -> bool:
        return should_stop() or (searching[0] and spent() >= budget_seconds)

    def wait() -> None:
        before = time.perf_counter()
        pause()
        paused[0] += time.perf_counter() - before
        if stopping():
            raise TrainingAborted("tuning stopped (asked to, or its budget is spent)")

    def fit(
        setting: Setting, report: Callable[[int, TrainedFactors], None] | None = None
    ) -> FittedModel:
        if setting.family != "als":
            wait()
            return make_family(setting.family).fit(data.data, setting.params, should_stop=stopping)
        params = AlsParams(**setting.params)

        def after(iteration: int, factors: TrainedFactors) -> None:
            wait()
            if report is not None:
                report(iteration, factors)

        trained = train_als(data.train, params, num_threads=num_threads, after_iteration=after)
        return AlsModel.from_trained(trained, params)

    records: list[TrialRecord] = []

    def objective(trial: Any) -> float:
        setting = space.suggest(trial)
        began = time.perf_counter()
        iterations = int(setting.params.get("iterations", 0))

        def report(iteration: int, factors: TrainedFactors) -> None:
            if iteration in _CHECKPOINTS and iteration < iterations:
                partial = AlsModel(factors.user_factors, factors.item_factors, setting.params)
                trial.report(
                    float(np.nanmean(per_user_ndcg(partial, data, search_users, k))), iteration
                )
                if trial.should_prune():
                    raise _Pruned(f"pruned after {iteration} iterations")

        def record(score: float | None, state: str) -> None:
            records.append(
                TrialRecord(
                    trial.number,
                    setting.family,
                    dict(setting.params),
                    score,
                    state,
                    time.perf_counter() - began,
                )
            )

        n_users, n_items = data.train.shape
        expected = make_family(setting.family).cost(
            n_users, n_items, int(data.train.nnz), setting.params
        )
        if setting.family != "als" and expected.seconds > budget_seconds - spent():
            record(None, "skipped")  # it would overrun what is left of the budget
            raise optuna.TrialPruned(f"expected {expected.seconds:.0f} s")
        try:
            model = fit(setting, report)
        except _Pruned as exc:
            record(None, "pruned")
            raise optuna.TrialPruned() from exc
        except TrainingError as exc:
            record(None, "failed")
            if isinstance(exc, TrainingAborted):
                trial.study.stop()
            raise optuna.TrialPruned() from exc
        score = float(np.nanmean(per_user_ndcg(model, data, search_users, k)))
        record(score, "complete")
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=10),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=0),
    )
    seen: set[tuple[Any, ...]] = set()
    defaults = [
        Setting(f, make_family(f).validate({**make_family(f).defaults(), **_pinned_of(space, f)}))
        for f in allowed
    ]
    for setting in (current, *warm_start, *defaults):
        values = space.trial_values(setting)
        key = tuple(sorted(values.items()))
        if values and key not in seen:
            seen.add(key)
            study.enqueue_trial(values, skip_if_exists=True)

    def budget_left(study: Any, trial: Any) -> None:
        if stopping():
            study.stop()

    if len(allowed) > 1 or allowed[0] != "als" or any(n not in space.pinned for n in TUNABLE):
        study.optimize(objective, n_trials=max_trials, callbacks=[budget_left], catch=())
    complete = [
        t
        for t in records
        if t.state == "complete" and t.score is not None and math.isfinite(t.score)
    ]
    if not complete:
        return outcome(current, False, "no trial completed within the budget", records)
    best_record = max(complete, key=lambda t: t.score or 0.0)
    best = Setting(best_record.family, best_record.params)
    if best == current:
        return outcome(current, False, "the current setting is still the best found", records)
    searching[0] = False
    try:
        scores = {
            name: per_user_ndcg(fit(setting), data, data.confirm_users, k)
            for name, setting in (("best", best), ("current", current))
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
    versus = "" if best.family == current.family else f" ({best.family} vs {current.family})"
    reason = (
        f"NDCG@{k} {comparison.candidate:.4f} vs {comparison.baseline:.4f} for the current "
        f"setting{versus} on {comparison.users} confirmation users, difference interval "
        f"[{comparison.low:+.4f}, {comparison.high:+.4f}]: {verdict}"
    )
    return outcome(best, better, reason, records, comparison)


def _pinned_of(space: SearchSpace, family: str) -> dict[str, Any]:
    """The operator's pinned values of ``family`` (ALS's by their flags' names)."""
    if family == "als":
        return {k: v for k, v in space.pinned.items() if k in TUNABLE}
    return {k: v for k, v in space.pinned.items() if k.startswith(f"{family}_")}


def _over_budget(space: SearchSpace, data: ValidationSplit, max_seconds: float) -> dict[str, str]:
    """Families whose fit on this split would take more than the memory budget, or more than
    ``max_seconds``, and why (ALS, the fallback, is never left out for time)."""
    n_users, n_items = data.train.shape
    nnz = int(data.train.nnz)
    found = {}
    for name in space.families:
        trainer = make_family(name)
        cost = trainer.cost(n_users, n_items, nnz, trainer.defaults())
        if cost.bytes > space.max_bytes:
            found[name] = (
                f"a fit on {n_items:,} items would take about {cost.bytes / 2**30:.1f} GiB, over "
                f"the {space.max_bytes / 2**30:.1f} GiB budget"
            )
        elif name != "als" and cost.seconds > max_seconds:
            found[name] = (
                f"a fit on {n_items:,} items would take about {cost.seconds:.0f} s, more than "
                f"{max_seconds:.0f} s of the tuning budget"
            )
    return found
