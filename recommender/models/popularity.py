"""The popularity fallback every family shares: the window's most popular items, plain or
weighted by recency, with banned and allowed columns."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .answers import ScoredItem

__all__ = ["PopularItems"]

IntArray = npt.NDArray[np.int64]


class PopularItems:
    """Items ranked by their events in the window (``counts``) or by recency-weighted events
    (``recent``); ties broken by column, so an answer is stable."""

    def __init__(
        self, item_ids: list[str], counts: IntArray, recent: npt.NDArray[np.float32]
    ) -> None:
        self.item_ids = item_ids
        self.counts = counts
        self.recent = recent
        columns = np.arange(counts.size)
        self._order = np.lexsort((columns, -counts))
        self._recent_order = np.lexsort((columns, -recent))

    def top(
        self,
        n: int,
        banned: IntArray,
        *,
        recent: bool = False,
        allowed: IntArray | None = None,
    ) -> list[ScoredItem]:
        """The ``n`` most popular columns, never ``banned`` ones, only ``allowed`` ones when
        given."""
        score: npt.NDArray[np.floating] | IntArray = self.recent if recent else self.counts
        if allowed is not None:
            if banned.size:
                allowed = allowed[~np.isin(allowed, banned)]
            top = allowed[np.lexsort((allowed, -score[allowed]))][:n]
        else:
            order = self._recent_order if recent else self._order
            if banned.size:
                order = order[~np.isin(order, banned)]
            top = order[:n]
        ids = self.item_ids
        return [
            ScoredItem(ids[c], float(s))
            for c, s in zip(top.tolist(), score[top].tolist(), strict=True)
        ]
