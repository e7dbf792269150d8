"""Synthetic interactions from a hidden-taste model, for the demo, tests and benchmarks.

Users and items belong to latent groups; a user mostly picks items of their own group, by a
Zipf-skewed popularity within it, and sometimes a globally popular item. A recommender that learns
the groups beats recommending the most popular items, measurably.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["SessionModel", "TasteModel", "random_snapshot_arrays"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TasteModel:
    """Parameters of the hidden-taste generator.

    User ``u<k>`` belongs to group ``k % groups``; item ``i<k>`` to group ``k % groups``.
    """

    users: int = 2000
    items: int = 1000
    groups: int = 8
    in_group: float = 0.9
    skew: float = 1.1

    def user_id(self, k: int) -> str:
        return f"u{k}"

    def item_id(self, k: int) -> str:
        return f"i{k}"

    def item_group(self, item: str) -> int:
        return int(item[1:]) % self.groups

    def user_group(self, user: str) -> int:
        return int(user[1:]) % self.groups

    def group_items(self, group: int) -> list[str]:
        return [self.item_id(k) for k in range(group, self.items, self.groups)]

    def _zipf(self, n: int) -> npt.NDArray[np.float64]:
        weights = 1.0 / np.arange(1, n + 1) ** self.skew
        return weights / weights.sum()

    def sample(
        self, count: int, rng: np.random.Generator, *, users: npt.NDArray[np.int64] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``count`` events as (user numbers, item numbers); ``users`` fixes who acts."""
        if users is None:
            users = rng.integers(0, self.users, count)
        group = users % self.groups
        per_group = -(-self.items // self.groups)
        rank = rng.choice(per_group, size=count, p=self._zipf(per_group))
        items = rank * self.groups + group
        items = np.where(items < self.items, items, group)  # the last, short row of a group
        wander = rng.random(count) >= self.in_group
        items[wander] = rng.choice(self.items, size=int(wander.sum()), p=self._zipf(self.items))
        return users, items

    def values(self, users: npt.NDArray[np.int64], items: npt.NDArray[np.int64]) -> list[bytes]:
        """Wire values ``u<k>:i<k>``."""
        return [f"u{u}:i{i}".encode() for u, i in zip(users.tolist(), items.tolist(), strict=True)]


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionModel:
    """Users walk a hidden transition graph, where order is the whole signal.

    From each item, three fixed successors follow with probabilities 0.6, 0.25 and 0.15; a
    ``jump`` share of steps goes to a Zipf-popular item instead. An ordered model should learn
    each item's successors; a model that ignores order sees only their co-occurrence.
    """

    items: int = 1000
    jump: float = 0.1
    skew: float = 1.1

    def draw(
        self, users: int, length: int, rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """A graph and walks on it: (items x 3 successors, most likely first; users x length
        item numbers in time order)."""
        popular = 1.0 / np.arange(1, self.items + 1) ** self.skew
        popular /= popular.sum()
        successors = np.array([rng.choice(self.items, 3, replace=False) for _ in range(self.items)])
        walks = np.empty((users, length), np.int64)
        walks[:, 0] = rng.choice(self.items, users, p=popular)
        for step in range(1, length):
            pick = successors[walks[:, step - 1], rng.choice(3, users, p=[0.6, 0.25, 0.15])]
            jump = rng.random(users) < self.jump
            walks[:, step] = np.where(jump, rng.choice(self.items, users, p=popular), pick)
        return successors, walks

    @staticmethod
    def values(walks: npt.NDArray[np.int64], *, first_user: int = 0) -> list[bytes]:
        """Wire values ``s<k>:i<k>``, walk by walk and step by step (the order to produce)."""
        users = np.repeat(np.arange(first_user, first_user + walks.shape[0]), walks.shape[1])
        pairs = zip(users.tolist(), walks.ravel().tolist(), strict=True)
        return [f"s{u}:i{i}".encode() for u, i in pairs]


def random_snapshot_arrays(
    n_users: int = 1000, n_items: int = 200, factors: int = 8, seed: int = 0
) -> dict[str, npt.NDArray[Any]]:
    """Consistent ALS snapshot arrays without training (write-heavy tests, benchmarks at
    sizes training would take minutes for)."""
    from .snapshot import encode_ids

    rng = np.random.default_rng(seed)
    per_user = 5
    indices = rng.integers(0, n_items, n_users * per_user).astype(np.int32)
    return {
        "user_factors": rng.standard_normal((n_users, factors)).astype(np.float32),
        "item_factors": rng.standard_normal((n_items, factors)).astype(np.float32),
        "user_ids": encode_ids([f"u{k}" for k in range(n_users)]),
        "item_ids": encode_ids([f"i{k}" for k in range(n_items)]),
        "seen_indptr": np.arange(0, n_users * per_user + 1, per_user, dtype=np.int64),
        "seen_indices": indices,
        "seen_weights": np.ones(indices.size, dtype=np.float32),
        "popularity": np.bincount(indices, minlength=n_items).astype(np.int64),
        "recent_popularity": np.bincount(indices, minlength=n_items).astype(np.float32),
    }
