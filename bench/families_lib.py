"""What bench/families.py measures with: data sets, the two protocols, histories, full-ranking
NDCG/recall per user, baselines behind the families' ``score(histories)``, and the tuner.

Protocols (both on every data set with an order; anything tuned is tuned on a validation split
carved from the training part by the same protocol, never on the test set):

- ``random``: per-user random 20 % holdout (recommender.evaluation.splits.per_user_holdout with
  the time hidden, so it shuffles with its seed);
- ``last``: leave-last-out by time: each user's newest like is the test item, the rest (in time
  order) train; users with fewer than two likes only train. Not on the anime sets (no time).
"""

from __future__ import annotations

import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from tuning import planted  # noqa: E402  (bench/tuning.py's planted-taste data)

from recommender.datasets import datasets_dir  # noqa: E402
from recommender.evaluation.data import (  # noqa: E402
    Interactions,
    read_interactions,
    to_matrix,
    with_rating_scale,
)
from recommender.evaluation.splits import Split, per_user_holdout, truth_sets  # noqa: E402
from recommender.models import History, ModelFamily, Sequences, TrainingData  # noqa: E402
from recommender.models.als_training import AlsParams, train_als  # noqa: E402
from recommender.models.ease import EaseFamily  # noqa: E402
from recommender.models.knn import KnnFamily  # noqa: E402
from recommender.models.rp3beta import Rp3BetaFamily  # noqa: E402
from recommender.models.sequence import SequenceFamily, sequences_from_events  # noqa: E402
from recommender.ratings import RatingScale  # noqa: E402
from recommender.synthetic import SessionModel  # noqa: E402
from recommender.user_metrics import per_user_metrics, top_k_rows  # noqa: E402

K = 10
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass(frozen=True)
class Dataset:
    name: str
    data: Interactions
    binary: bool  # learn from 1 per pair (likes-only data) rather than the summed weights
    ordered: bool  # events have a meaningful time
    truth: Callable[[Split], Any] | None = None  # planted oracle scorer factory, if any


def planted_sessions(
    users: int = 2000, length: int = 30, items: int = 1000, seed: int = 11
) -> tuple[Interactions, np.ndarray]:
    """Users walk a hidden transition graph: from each item, three fixed successors with
    probabilities 0.6/0.25/0.15, 10 % of steps a jump to a Zipf-popular item. Returns the events
    (time = step) and the true next-item distribution (items x items)."""
    model = SessionModel(items=items)
    successors, walks = model.draw(users, length, np.random.default_rng(seed))
    zipf = 1.0 / np.arange(1, items + 1) ** model.skew
    zipf /= zipf.sum()
    truth = np.tile(model.jump * zipf, (items, 1))
    np.add.at(
        truth,
        (np.repeat(np.arange(items), 3), successors.ravel()),
        (1 - model.jump) * np.tile([0.6, 0.25, 0.15], items),
    )
    data = Interactions(
        np.repeat(np.arange(users), length),
        walks.ravel(),
        np.ones(users * length, np.float32),
        np.tile(np.arange(length), users).astype(np.int64),
        [f"u{u}" for u in range(users)],
        [f"i{i}" for i in range(items)],
        f"planted sessions {users} users x {length} steps, {items} items",
    )
    return data, truth


def datasets(names: Sequence[str] | None = None) -> list[Dataset]:
    found: dict[str, Callable[[], Dataset]] = {
        "planted-tastes": lambda: Dataset(
            "planted-tastes", planted(2000, 30, 1000, 10, 0.85), True, True
        ),
        "planted-sessions": lambda: Dataset("planted-sessions", planted_sessions()[0], True, True),
    }
    shared = datasets_dir()
    if shared is not None:
        ml = shared / "movielens-latest-small" / "ratings.csv"
        anime = shared / "anime"
        found["ml-likes"] = lambda: Dataset(
            "ml-likes", read_interactions(ml, min_rating=4), True, True
        )
        found["ml-ratings"] = lambda: Dataset(
            "ml-ratings",
            with_rating_scale(read_interactions(ml), RatingScale.parse("0.5..5")),
            False,
            True,
        )
        found["anime-history"] = lambda: Dataset(
            "anime-history", read_interactions(anime / "anime_history.dat"), True, False
        )
        found["anime-ratings"] = lambda: Dataset(
            "anime-ratings",
            read_interactions(anime / "anime_ratings.dat", min_rating=7),
            True,
            False,
        )
    wanted = list(found) if not names else list(names)
    missing = [n for n in wanted if n not in found]
    if missing:
        print(f"skipped (not on this machine or unknown): {', '.join(missing)}", file=sys.stderr)
    return [found[n]() for n in wanted if n in found]


def random_holdout(data: Interactions, seed: int = 42) -> Split:
    """per_user_holdout with the time hidden (a seeded shuffle); the event index travels in the
    weights so that the subsets keep their real weights and times."""
    coded = Interactions(
        data.users, data.items, np.arange(len(data), dtype=np.float32), None,
        data.user_ids, data.item_ids, data.source,
    )  # fmt: skip
    split = per_user_holdout(coded, fraction=0.2, seed=seed)
    test = np.zeros(len(data), bool)
    test[split.test.weights.astype(np.int64)] = True
    return Split(data.subset(~test), data.subset(test), "per-user random 20 % holdout")


def leave_last_out(data: Interactions, seed: int = 42) -> Split:
    """Each user's newest like (ties in time broken by a seeded shuffle) is test."""
    assert data.timestamps is not None, "leave-last-out needs time"
    liked = np.flatnonzero(data.weights > 0)
    tiebreak = np.random.default_rng(seed).permutation(liked.size)
    order = liked[np.lexsort((tiebreak, data.timestamps[liked], data.users[liked]))]
    users = data.users[order]
    last = np.r_[users[1:] != users[:-1], True]
    counts = np.bincount(users, minlength=data.n_users)
    newest = order[last & (counts[users] >= 2)]
    test = np.zeros(len(data), bool)
    test[newest] = True
    return Split(data.subset(~test), data.subset(test), "leave-last-out by time (newest like)")


PROTOCOLS: dict[str, Callable[[Interactions, int], Split]] = {
    "random": random_holdout,
    "last": leave_last_out,
}


def training_data(split: Split, dataset: Dataset) -> TrainingData:
    matrix = to_matrix(split.train, binary=dataset.binary)
    train = split.train
    if dataset.ordered and train.timestamps is not None:
        liked = train.weights > 0
        sequences = sequences_from_events(
            train.n_users, train.users[liked], train.items[liked], train.timestamps[liked]
        )
    else:
        sequences = Sequences.empty(train.n_users)
    return TrainingData(matrix, sequences)


@dataclass(frozen=True)
class Task:
    """One split ready to score: what a model learns from and what it must find."""

    data: TrainingData
    users: np.ndarray
    truth: sp.csr_matrix
    split: Split


def task(split: Split, dataset: Dataset) -> Task:
    truth_sets_ = truth_sets(split)
    users = np.array(sorted(truth_sets_), np.int64)
    rows = np.repeat(np.arange(users.size), [len(truth_sets_[u]) for u in users])
    cols = np.array([i for u in users for i in sorted(truth_sets_[u])], np.int64)
    truth = sp.csr_matrix(
        (np.ones(cols.size), (rows, cols)), shape=(users.size, split.train.n_items)
    )
    return Task(training_data(split, dataset), users, truth, split)


def histories(data: TrainingData, users: np.ndarray) -> list[History]:
    m = data.user_items
    return [
        History(
            m.indices[m.indptr[u] : m.indptr[u + 1]].astype(np.int64),
            m.data[m.indptr[u] : m.indptr[u + 1]],
            data.sequences.of(int(u)),
            row=int(u),
        )
        for u in users
    ]


def ranking(model: Any, t: Task, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per test user NDCG@10 and recall@10, full ranking, the user's training items excluded."""
    ndcg, recall = [], []
    for lo in range(0, t.users.size, batch):
        users = t.users[lo : lo + batch]
        hs = histories(t.data, users)
        scores = model.score(hs)
        for row, h in enumerate(hs):
            scores[row, h.cols] = -np.inf
        top = top_k_rows(scores, K)
        n, r = per_user_metrics(top, t.truth[lo : lo + batch], K)
        ndcg.append(n)
        recall.append(r)
    return np.concatenate(ndcg), np.concatenate(recall)


class Popularity:
    """The most liked items."""

    def __init__(self, data: TrainingData) -> None:
        liked = data.user_items.multiply(data.user_items > 0).tocsr()
        self.counts = np.asarray((liked > 0).sum(axis=0), np.float32).ravel()

    def score(self, hs: Sequence[History]) -> np.ndarray:
        return np.tile(self.counts, (len(hs), 1))


class Als:
    """ALS (train_als) scoring its trained user vectors, as the server does without fresh events."""

    def __init__(self, data: TrainingData, params: AlsParams) -> None:
        factors = train_als(data.user_items, params)
        self.users, self.items = factors.user_factors, factors.item_factors

    def score(self, hs: Sequence[History]) -> np.ndarray:
        rows = np.array([h.row for h in hs], np.int64)
        return np.asarray(self.users[rows] @ self.items.T, np.float32)


class Oracle:
    """The planted answer: P(next item | the newest recent item), known by construction."""

    def __init__(self, truth: np.ndarray) -> None:
        self.truth = truth.astype(np.float32)

    def score(self, hs: Sequence[History]) -> np.ndarray:
        return np.vstack(
            [self.truth[h.recent[-1]] if h.recent.size else self.truth.mean(0) for h in hs]
        )


@dataclass(frozen=True)
class Candidate:
    """A row of the tables: a family (or ALS) with fixed settings and a search space."""

    label: str
    family: ModelFamily | None  # None: ALS
    fixed: dict[str, Any]

    def fit(self, data: TrainingData, params: dict[str, Any]) -> Any:
        if self.family is None:
            return Als(data, AlsParams(**params))
        return self.family.fit(data, {**params, **self.fixed})

    def defaults(self) -> dict[str, Any]:
        if self.family is None:
            return {}
        return {k: v for k, v in self.family.defaults().items() if k not in self.fixed}

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        if self.family is None:
            return {
                "factors": trial.suggest_categorical("factors", [32, 64, 128]),
                "regularization": trial.suggest_float("regularization", 0.05, 100.0, log=True),
                "alpha": trial.suggest_float("alpha", 0.5, 30.0, log=True),
            }
        return {k: v for k, v in self.family.suggest(trial).items() if k not in self.fixed}

    def cost(self, data: TrainingData, params: dict[str, Any]) -> tuple[float, float]:
        if self.family is None:
            return float("nan"), float("nan")
        n_users, n_items = data.shape
        c = self.family.cost(n_users, n_items, data.user_items.nnz, {**params, **self.fixed})
        return c.bytes / 2**20, c.seconds


CANDIDATES = [
    Candidate("ALS", None, {}),
    Candidate("EASE", EaseFamily(), {}),
    Candidate("RP3beta", Rp3BetaFamily(), {}),
    Candidate("item-kNN cosine", KnnFamily(), {"knn_weighting": "cosine"}),
    Candidate("item-kNN BM25", KnnFamily(), {"knn_weighting": "bm25"}),
    Candidate("sequence", SequenceFamily(), {}),
]


def measured_fit(
    candidate: Candidate, data: TrainingData, params: dict[str, Any]
) -> tuple[Any, float, float]:
    """The fitted model, its fit seconds and peak traced MiB (numpy allocations; implicit's C++
    buffers in ALS are not traced)."""
    tracemalloc.start()
    started = time.perf_counter()
    model = candidate.fit(data, params)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return model, seconds, peak


def tune(
    candidate: Candidate, validation: Task, trials: int, seed: int = 42
) -> tuple[dict[str, Any], float]:
    """The best of ``trials`` optuna TPE trials by mean validation NDCG@10, the defaults first."""
    sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(seed=seed)
    if candidate.fixed:  # e.g. knn_weighting: the family's own search space, one part fixed
        sampler = optuna.samplers.PartialFixedSampler(candidate.fixed, sampler)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    first = (
        {"factors": 64, "regularization": 32.0, "alpha": 4.0}
        if candidate.family is None
        else {k: v for k, v in candidate.defaults().items() if not isinstance(v, bool)}
    )
    study.enqueue_trial(first, skip_if_exists=True)

    def objective(trial: optuna.Trial) -> float:
        params = candidate.suggest(trial)
        return float(np.nanmean(ranking(candidate.fit(validation.data, params), validation)[0]))

    study.optimize(objective, n_trials=trials)
    best = dict(study.best_trial.params)
    if candidate.family is not None:
        best = {
            k: v
            for k, v in candidate.family.validate({**best, **candidate.fixed}).items()
            if k not in candidate.fixed
        }
    return best, float(study.best_value)


def with_time_hidden(dataset: Dataset) -> Dataset:
    return replace(dataset, ordered=False)
