"""User features: how active a user is and how recently, and how much of what they like shares
a category with a candidate. The builder computes them from the window at its training cut; the
server from the snapshot's stats and the user's fresh events, with the same functions. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = [
    "USER_FEATURES",
    "UserStats",
    "binary_categories",
    "category_match",
    "user_stats",
]

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
        at once, as fold-in does. Unknown values are NaN."""
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
        return np.column_stack([events, share, since, active]).astype(np.float32)


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
    categories, 0/1 float32 CSR (see :func:`binary_categories`)."""
    rows, k = candidates.shape
    out = np.full((rows, k), np.nan, np.float32)
    indptr = item_categories.indptr
    for row, cols in enumerate(histories):
        if cols.size == 0:
            continue
        liked = item_categories[cols]  # liked items x categories
        # an item shares a category with a liked one when their category rows overlap
        overlap = (liked @ item_categories[candidates[row]].T).toarray() > 0  # liked x k
        share = overlap.mean(axis=0)
        has_category = indptr[candidates[row] + 1] > indptr[candidates[row]]
        out[row] = np.where(has_category, share, np.nan)
    return out


def binary_categories(item_categories: sp.csr_matrix) -> sp.csr_matrix:
    """Items x categories as 0/1 float32 CSR, what :func:`category_match` reads."""
    return (item_categories > 0).astype(np.float32).tocsr()
