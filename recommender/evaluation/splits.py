"""Train/test splits. Every split returns disjoint event subsets of the same id spaces."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .data import Interactions

__all__ = [
    "Split",
    "global_cutoff",
    "leave_last_out",
    "per_user_holdout",
    "truth_sets",
]


@dataclass(frozen=True, slots=True)
class Split:
    train: Interactions
    test: Interactions
    description: str


def _order(data: Interactions, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Event order within each user: by time when known, else a seeded shuffle."""
    tiebreak = rng.permutation(len(data))
    if data.timestamps is None:
        return np.lexsort((tiebreak, data.users))
    return np.lexsort((tiebreak, data.timestamps, data.users))


def per_user_holdout(data: Interactions, *, fraction: float = 0.2, seed: int = 42) -> Split:
    """Each user's last ``fraction`` of events (by time; shuffled when there is no time) is
    test, everything earlier train. Users keep at least one training event."""
    if not 0 < fraction < 1:
        raise ValueError("fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    order = _order(data, rng)
    users = data.users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, users.size])
    n_test = np.minimum(np.floor(counts * fraction).astype(np.int64), counts - 1)
    position = np.arange(users.size) - np.repeat(starts, counts)
    is_test = position >= np.repeat(counts - n_test, counts)
    test = np.zeros(len(data), bool)
    test[order[is_test]] = True
    how = "last" if data.timestamps is not None else "random (no timestamps; seeded)"
    return Split(
        data.subset(~test),
        data.subset(test),
        f"per-user holdout: {how} {fraction:.0%} of each user's events",
    )


def leave_last_out(data: Interactions, *, seed: int = 42) -> Split:
    """Each user's newest liked event is test (by time; ties in a seeded shuffle), the events
    before it train; events after it (dislikes, neutral ratings) are left out, being later than
    what is predicted. Users with fewer than two likes only train."""
    if data.timestamps is None:
        raise ValueError("leave-last-out needs timestamps")
    order = _order(data, np.random.default_rng(seed))
    users, liked = data.users[order], data.weights[order] > 0
    likes = np.flatnonzero(liked)
    owners = users[likes]
    newest = likes[np.r_[owners[1:] != owners[:-1], True]] if likes.size else likes
    newest = newest[np.bincount(owners, minlength=data.n_users)[users[newest]] >= 2]
    cut = np.full(data.n_users, np.iinfo(np.int64).max)  # position of each user's test event
    cut[users[newest]] = newest
    position = np.arange(users.size)
    test = np.zeros(len(data), bool)
    train = np.zeros(len(data), bool)
    test[order[newest]] = True
    train[order[position < cut[users]]] = True
    return Split(
        data.subset(train), data.subset(test), "leave-last-out: each user's newest liked event"
    )


def global_cutoff(data: Interactions, *, quantile: float = 0.9) -> Split:
    """Events before the ``quantile`` of all timestamps train, later ones test."""
    if data.timestamps is None:
        raise ValueError("a global time cut-off needs timestamps")
    cut = np.quantile(data.timestamps, quantile)
    test = data.timestamps >= cut
    return Split(
        data.subset(~test), data.subset(test), f"global time cut-off at the {quantile:.0%} quantile"
    )


def truth_sets(split: Split) -> dict[int, set[int]]:
    """Per test user, the held-out items they liked (weight > 0: not a dislike or a neutral
    rating) and did not already have in training."""
    seen: dict[int, set[int]] = {}
    for u, i in zip(split.train.users.tolist(), split.train.items.tolist(), strict=True):
        seen.setdefault(u, set()).add(i)
    truth: dict[int, set[int]] = {}
    liked = split.test.weights > 0
    users, items = split.test.users[liked], split.test.items[liked]
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        if i not in seen.get(u, ()):
            truth.setdefault(u, set()).add(i)
    return truth
