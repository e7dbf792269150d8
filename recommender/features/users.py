"""User features: how active a user is and how recently, and how much of what they like shares
a category with a candidate. The builder computes them from the window at its training cut; the
server from the snapshot's stats and the user's fresh events, with the same functions. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["USER_FEATURES", "CategoryIndex", "UserStats", "category_match", "user_stats"]

#: A user's features, in :meth:`UserStats.matrix`'s column order.
USER_FEATURES: Final = (
    "user.events",
    "user.liked_share",
    "user.days_since_last",
    "user.days_active",
)
_DAY_MS: Final = 86_400_000

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class UserStats:
    """Per user row: events and liked events in the window, first and last event times (-1:
    none)."""

    events: npt.NDArray[np.int64]
    liked: npt.NDArray[np.int64]
    first_ms: npt.NDArray[np.int64]
    last_ms: npt.NDArray[np.int64]

    @cached_property
    def mean_events(self) -> float:
        """Events per user with any in the window (what activity is measured against)."""
        active = self.events[self.events > 0]
        return float(active.mean()) if active.size else 1.0

    def matrix(
        self,
        rows: IntArray,
        now_ms: int,
        *,
        fresh_events: IntArray | None = None,
        fresh_liked: IntArray | None = None,
        fresh_last_ms: IntArray | None = None,
    ) -> FloatArray:
        """Rows for ``rows`` (-1: a user the window does not know) in :data:`USER_FEATURES`
        order, with each user's fresh events (newer than the window) added: a fresh event counts
        at once, as fold-in does. ``user.events`` is the user's events over the window's mean
        per active user. Unknown values are NaN."""
        known = rows >= 0
        safe = np.where(known, rows, 0)
        events = np.where(known, self.events[safe], 0)
        liked = np.where(known, self.liked[safe], 0)
        first = np.where(known, self.first_ms[safe], -1)
        last = np.where(known, self.last_ms[safe], -1)
        if fresh_events is not None:
            events = events + fresh_events
            liked = liked + (fresh_liked if fresh_liked is not None else 0)
        if fresh_last_ms is not None:
            last = np.maximum(last, fresh_last_ms)
            first = np.where(first < 0, fresh_last_ms, first)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = liked / events
        since = np.where(last < 0, np.nan, (now_ms - last) / _DAY_MS)
        active = np.where((first < 0) | (last < 0), np.nan, (last - first) / _DAY_MS)
        # against the window's mean: a count would grow with the window (see ItemStats.matrix)
        activity = events / self.mean_events
        return np.column_stack([activity, share, since, active]).astype(np.float32)


def user_stats(
    users: IntArray, times_ms: IntArray, weights: npt.NDArray[np.floating], n_users: int
) -> UserStats:
    """The stats of every user row from the window's events (row, time, weight)."""
    events = np.bincount(users, minlength=n_users).astype(np.int64)
    liked = np.bincount(users[weights > 0], minlength=n_users).astype(np.int64)
    first = np.full(n_users, -1, np.int64)
    last = np.full(n_users, -1, np.int64)
    if users.size:
        order = np.argsort(times_ms, kind="stable")
        ordered = users[order]
        seen, at = np.unique(ordered, return_index=True)
        first[seen] = times_ms[order][at]
        seen, at = np.unique(ordered[::-1], return_index=True)
        last[seen] = times_ms[order][::-1][at]
    return UserStats(events, liked, first, last)


def category_match(
    histories: Sequence[IntArray], candidates: IntArray, item_categories: sp.csr_matrix
) -> FloatArray:
    """For each user (their liked item columns) and each of their candidates (rows x k columns),
    the share of the user's liked items that share a category with the candidate; NaN for a user
    without liked items or a candidate without categories. ``item_categories``: items x
    categories (nonzero: the item is in it). Whoever matches often keeps a
    :class:`CategoryIndex`."""
    return (
        CategoryIndex(item_categories).match(histories, list(candidates)).reshape(candidates.shape)
    )


class CategoryIndex:
    """Items' categories, matched against a user's liked items without a pairwise product: for
    each category the liked items in it are a bit set (one bit a liked item), a candidate's
    share is the size of the union of its categories' sets. Linear in the categories of the
    liked items and the candidates (measured: 200 candidates against 50 liked items of 40
    categories, ~300 us as a sparse product) and in memory bits per liked item and category."""

    #: Set bits per byte value.
    _POPCOUNT: Final = np.array([bin(value).count("1") for value in range(256)], np.uint8)

    def __init__(self, item_categories: sp.csr_matrix) -> None:
        binary = (item_categories > 0).tocsr()
        binary.sort_indices()
        self.indptr = binary.indptr.astype(np.int64)
        self.indices = binary.indices.astype(np.int64)
        self.has_category = np.diff(self.indptr) > 0

    def match(self, liked: Sequence[IntArray], candidates: Sequence[IntArray]) -> FloatArray:
        """Each user's candidates' shares (see :func:`category_match`), one user's candidates
        after another's: ``liked`` and ``candidates`` hold one array of item columns a user."""
        parts = [np.zeros(0, np.float32)]
        for mine_liked, mine in zip(liked, candidates, strict=True):
            share = self._share(mine_liked, mine) if mine_liked.size else np.full(mine.size, np.nan)
            parts.append(np.where(self.has_category[mine], share, np.nan).astype(np.float32))
        return np.concatenate(parts)

    def _categories_of(self, cols: IntArray) -> tuple[IntArray, IntArray]:
        """Every category of ``cols`` and the position in ``cols`` of the item it belongs to."""
        starts = self.indptr[cols]
        lengths = self.indptr[cols + 1] - starts
        owners = np.repeat(np.arange(cols.size), lengths)
        offsets = np.arange(owners.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return self.indices[np.repeat(starts, lengths) + offsets], owners

    def _share(self, liked: IntArray, candidates: IntArray) -> npt.NDArray[np.float64]:
        categories, owners = self._categories_of(liked)
        used, position = np.unique(categories, return_inverse=True)
        members = np.zeros((used.size, liked.size), bool)  # category x liked item
        members[position, owners] = True
        packed = np.packbits(members, axis=1)  # a bit set of liked items per category
        wanted, candidate = self._categories_of(candidates)  # grouped by candidate, in order
        shared = np.zeros(candidates.size, np.float64)
        if used.size == 0 or wanted.size == 0:
            return shared
        at = np.minimum(np.searchsorted(used, wanted), used.size - 1)
        hit = used[at] == wanted
        if not hit.any():
            return shared
        who = candidate[hit]
        starts = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])
        union = np.bitwise_or.reduceat(packed[at[hit]], starts, axis=0)
        shared[who[starts]] = self._POPCOUNT[union].sum(axis=1, dtype=np.int64)
        return shared / liked.size
