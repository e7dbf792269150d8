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

__all__ = ["TasteModel", "random_snapshot_arrays"]


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
