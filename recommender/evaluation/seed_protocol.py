"""The seed project's protocol on the anime ratings, so that its readers can compare.

As we reconstruct it: users ordered by id; the first ones tune hyper-parameters by 5-fold
cross-validation, the last 1,000 are the test set. For every evaluated user, 20 % of their ratings
(seeded) are hidden; the model learns from everything else and recommends 10 items the user has
not rated in what it saw. Definitions (written down because the seed only named them):

- a recommendation is *judged* if the user has a hidden rating for it, and *correct* if that
  rating is greater than 5 (out of 10);
- accuracy  = correct / judged (of the predictions we can check, how many the user liked);
- precision = correct / recommended (10 per user); recall = correct / hidden ratings > 5;
- F-measure = 2 · precision · recall / (precision + recall), from totals over users.

The ratings file has 4,714 users, so the cross-validation set is the first 3,714 and the test set
the last 1,000 (disjoint, as the seed intended with 5,000 users).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..models.als_training import AlsParams
from .data import Interactions, to_matrix
from .models import AlsModel, Recommender

__all__ = [
    "FOLDS",
    "HIDDEN_FRACTION",
    "LIKED_ABOVE",
    "TEST_USERS",
    "SeedScores",
    "cross_validate",
    "score_seed",
    "seed_protocol_split",
]

log = logging.getLogger(__name__)

#: The last this many users (by id) are the test set.
TEST_USERS = 1000
#: Share of each evaluated user's ratings hidden from the model.
HIDDEN_FRACTION = 0.2
#: Cross-validation folds over the other users.
FOLDS = 5
#: A hidden rating above this (out of 10) makes a recommendation correct.
LIKED_ABOVE = 5.0


@dataclass(frozen=True, slots=True)
class SeedScores:
    accuracy: float
    precision: float
    recall: float
    f_measure: float
    users: int


def _user_order(data: Interactions) -> list[int]:
    def key(code: int) -> tuple[int, float | str]:
        text = data.user_ids[code]
        try:
            return (0, float(text))
        except ValueError:
            return (1, text)

    return sorted(range(data.n_users), key=key)


def seed_protocol_split(
    data: Interactions, *, test_users: int = TEST_USERS
) -> tuple[list[int], list[int]]:
    """(cross-validation users, test users) by user id order."""
    order = _user_order(data)
    if len(order) <= test_users:
        raise ValueError(f"need more than {test_users} users, have {len(order)}")
    return order[:-test_users], order[-test_users:]


def _hide(
    data: Interactions,
    users: Sequence[int],
    rng: np.random.Generator,
    fraction: float = HIDDEN_FRACTION,
) -> npt.NDArray[np.bool_]:
    """Mask of hidden events: ``fraction`` of each listed user's ratings."""
    hidden = np.zeros(len(data), bool)
    chosen = np.zeros(data.n_users, bool)
    chosen[list(users)] = True
    rows = np.flatnonzero(chosen[data.users])
    shuffled = rows[rng.permutation(rows.size)]
    order = shuffled[np.argsort(data.users[shuffled], kind="stable")]
    user_of = data.users[order]
    starts = np.flatnonzero(np.r_[True, user_of[1:] != user_of[:-1]])
    counts = np.diff(np.r_[starts, user_of.size])
    take = np.floor(counts * fraction).astype(np.int64)
    position = np.arange(order.size) - np.repeat(starts, counts)
    hidden[order[position < np.repeat(take, counts)]] = True
    return hidden


def score_seed(
    model: Recommender, data: Interactions, users: Sequence[int], *, seed: int = 42, k: int = 10
) -> SeedScores:
    """Hide 20 % of ``users``' ratings, fit on the rest, and score the top-k lists."""
    rng = np.random.default_rng(seed)
    hidden = _hide(data, users, rng)
    model.fit(to_matrix(data.subset(~hidden), binary=True))
    ratings: dict[int, dict[int, float]] = {}
    for u, i, w in zip(
        data.users[hidden].tolist(),
        data.items[hidden].tolist(),
        data.weights[hidden].tolist(),
        strict=True,
    ):
        ratings.setdefault(u, {})[i] = w
    evaluated = np.array([u for u in users if u in ratings], dtype=np.int64)
    lists = model.recommend(evaluated, k)
    judged = correct = liked = 0
    for u, row in zip(evaluated.tolist(), lists, strict=True):
        theirs = ratings[u]
        liked += sum(1 for w in theirs.values() if w > LIKED_ABOVE)
        for item in row.tolist():
            if item in theirs:
                judged += 1
                correct += theirs[item] > LIKED_ABOVE
    recommended = evaluated.size * k
    precision = correct / recommended if recommended else 0.0
    recall = correct / liked if liked else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return SeedScores(
        correct / judged if judged else 0.0, precision, recall, f, int(evaluated.size)
    )


def cross_validate(
    data: Interactions,
    cv_users: Sequence[int],
    grid: Sequence[AlsParams],
    *,
    folds: int = FOLDS,
    seed: int = 42,
    progress: Callable[[], None] | None = None,
) -> list[tuple[AlsParams, float]]:
    """Mean F-measure of each setting over ``folds`` folds of the cross-validation users only."""
    rng = np.random.default_rng(seed)
    shuffled = [cv_users[i] for i in rng.permutation(len(cv_users))]
    parts = [shuffled[f::folds] for f in range(folds)]
    cv_mask = np.zeros(data.n_users, bool)
    cv_mask[list(cv_users)] = True
    only_cv = data.subset(cv_mask[data.users])  # test users' ratings are never seen here
    results = []
    for params in grid:
        scores = []
        for f, part in enumerate(parts):
            scores.append(score_seed(AlsModel(params), only_cv, part, seed=seed + f).f_measure)
            if progress is not None:
                progress()
        results.append((params, float(np.mean(scores))))
        log.info("CV F-measure %.4f with %s", results[-1][1], params)
    return results


def default_grid(seed: int = 42) -> list[AlsParams]:
    return [
        AlsParams(factors=f, regularization=r, alpha=a, iterations=15, random_seed=seed)
        for f, r, a in itertools.product((20, 64), (0.1, 5.0), (1.0, 15.0))
    ]
