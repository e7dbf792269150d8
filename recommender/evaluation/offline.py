"""Offline protocols: score models on a split, and search ALS settings on validation data only."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..models.als_training import AlsParams
from .data import Interactions, to_matrix
from .metrics import evaluate_lists, user_scores
from .models import AlsModel, Popularity, Recommender
from .splits import Split, per_user_holdout, truth_sets

__all__ = ["ModelResult", "SearchTrial", "evaluate_model", "search_als"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelResult:
    name: str
    metrics: dict[int, dict[str, float]]
    train_seconds: float
    #: Per k, each test user's NDCG@k (users in ascending code order, the same for every model
    #: on a split), for paired comparisons.
    user_ndcg: dict[int, npt.NDArray[np.float64]] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        """What the report's JSON keeps: the means, not the per-user scores."""
        return {"name": self.name, "metrics": self.metrics, "train_seconds": self.train_seconds}


def evaluate_model(
    model: Recommender, split: Split, ks: Sequence[int], *, binary: bool = True
) -> ModelResult:
    """Fit on ``split.train`` and score top-k lists against the held-out items.

    Users with no training event get the popularity list from every model, as the server answers
    them (a model cannot personalise for someone it has never seen).
    """
    train = to_matrix(split.train, binary=binary)
    seconds = model.fit(train)
    truth = truth_sets(split)
    users = np.array(sorted(truth), dtype=np.int64)
    lists = model.recommend(users, max(ks)) if users.size else np.zeros((0, max(ks)), np.int64)
    cold = np.diff(train.indptr)[users] == 0
    if cold.any() and not isinstance(model, Popularity):
        fallback = Popularity()
        fallback.fit(train)
        lists[cold] = fallback.recommend(users[cold], max(ks))
    recommendations = {
        int(u): [int(i) for i in row if i >= 0] for u, row in zip(users, lists, strict=True)
    }
    metrics = evaluate_lists(recommendations, truth, ks, split.train.n_items)
    per_user = {
        k: np.array(
            [user_scores(recommendations[u], truth[u], k).ndcg for u in users.tolist()], np.float64
        )
        for k in ks
    }
    return ModelResult(model.name, metrics, seconds, per_user)


@dataclass(frozen=True, slots=True)
class SearchTrial:
    params: AlsParams
    ndcg: float
    seconds: float


def _sample(rng: np.random.Generator, seed: int) -> AlsParams:
    return AlsParams(
        factors=int(rng.choice([16, 32, 64, 128])),
        regularization=float(math.exp(rng.uniform(math.log(0.01), math.log(30.0)))),
        alpha=float(math.exp(rng.uniform(math.log(0.3), math.log(40.0)))),
        iterations=int(rng.choice([10, 15, 20])),
        random_seed=seed,
    )


def search_als(
    train: Interactions,
    *,
    budget_seconds: float = 60.0,
    max_trials: int = 200,
    k: int = 10,
    seed: int = 42,
    binary: bool = True,
    fit_and_score: Callable[[AlsParams, Split], float] | None = None,
) -> tuple[AlsParams, list[SearchTrial]]:
    """Random search over factors, regularization, alpha and iterations within a time budget.

    Only ``train`` is seen: a validation split is carved from it (each user's last 20 %), trials
    are scored by NDCG@k there, and the best settings are returned. The caller then fits them on
    the whole training set and measures once on the test set.
    """
    validation = per_user_holdout(train, fraction=0.2, seed=seed)

    def default_score(params: AlsParams, split: Split) -> float:
        return evaluate_model(AlsModel(params), split, [k], binary=binary).metrics[k]["ndcg"]

    score = fit_and_score or default_score
    rng = np.random.default_rng(seed)
    candidates = [AlsParams(random_seed=seed)] + [_sample(rng, seed) for _ in range(max_trials - 1)]
    trials: list[SearchTrial] = []
    deadline = time.monotonic() + budget_seconds
    for params in candidates:
        if trials and time.monotonic() >= deadline:
            break
        started = time.perf_counter()
        ndcg = score(params, validation)
        trials.append(SearchTrial(params, ndcg, time.perf_counter() - started))
        log.info("trial %d: NDCG@%d %.4f with %s", len(trials), k, ndcg, params)
    best = max(trials, key=lambda t: t.ndcg)
    return best.params, trials
