"""A loaded snapshot, ready to answer queries: scoring, filtering, popularity fallback.

Pure: numpy and scipy only. One :class:`RecommenderModel` is immutable once built, so a server can
swap models by replacing one reference while in-flight requests finish on the old one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .snapshot import Snapshot

__all__ = ["Answer", "AnswerSource", "RecommenderModel", "ScoredItem"]

AnswerSource = Literal["personalised", "popular"]


@dataclass(frozen=True, slots=True)
class ScoredItem:
    item: str
    score: float


@dataclass(frozen=True, slots=True)
class Answer:
    """Top-n items and how they were found."""

    items: list[ScoredItem]
    source: AnswerSource

    @property
    def fallback(self) -> bool:
        return self.source == "popular"


class RecommenderModel:
    """Scores items for users of one snapshot.

    Parameters
    ----------
    snapshot : Snapshot
        A loaded, verified snapshot (see :func:`recommender.snapshot.load_snapshot`).
    """

    def __init__(self, snapshot: Snapshot) -> None:
        arrays = snapshot.arrays
        self.snapshot = snapshot
        self.version = snapshot.version
        self.manifest: dict[str, Any] = snapshot.manifest
        self.user_ids = snapshot.user_ids
        self.item_ids = snapshot.item_ids
        self.user_factors: npt.NDArray[np.float32] = arrays["user_factors"]
        self.item_factors: npt.NDArray[np.float32] = arrays["item_factors"]
        self.user_index = {user: row for row, user in enumerate(self.user_ids)}
        self.item_index = {item: col for col, item in enumerate(self.item_ids)}
        self.seen = sp.csr_matrix(
            (arrays["seen_weights"], arrays["seen_indices"], arrays["seen_indptr"]),
            shape=(len(self.user_ids), len(self.item_ids)),
        )
        self.popularity: npt.NDArray[np.int64] = arrays["popularity"]
        # Most popular first; ties broken by column for a stable answer.
        self.popular_order = np.lexsort((np.arange(self.popularity.size), -self.popularity))

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def knows_user(self, user: str) -> bool:
        return user in self.user_index

    def seen_items(self, user: str) -> list[str]:
        """Items the user has in the snapshot's window."""
        row = self.user_index.get(user)
        if row is None:
            return []
        cols = self.seen.indices[self.seen.indptr[row] : self.seen.indptr[row + 1]]
        return [self.item_ids[c] for c in cols.tolist()]

    def _columns(self, items: Iterable[str]) -> npt.NDArray[np.int64]:
        index = self.item_index
        cols = [c for c in (index.get(item) for item in items) if c is not None]
        return np.asarray(cols, dtype=np.int64)

    def recommend(
        self,
        user: str,
        n: int,
        *,
        filter_seen: bool = True,
        exclude: Iterable[str] = (),
    ) -> Answer:
        """The top-``n`` items for ``user``.

        A user the snapshot knows is scored with their factors (``personalised``); anyone else
        gets the window's most popular items (``popular``). Items the user already has in the
        window are left out when ``filter_seen``; items in ``exclude`` always are. Fewer than
        ``n`` items come back only when fewer are left to recommend.
        """
        row = self.user_index.get(user)
        banned = self._columns(exclude)
        if row is None:
            return Answer(self._popular(n, banned), "popular")
        if filter_seen:
            seen = self.seen.indices[self.seen.indptr[row] : self.seen.indptr[row + 1]]
            banned = np.concatenate((banned, seen.astype(np.int64)))
        return Answer(self._top(self.score(self.user_factors[row]), n, banned), "personalised")

    def score(self, user_vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Scores of every item for one user vector (a fresh, writable array)."""
        return np.asarray(self.item_factors @ user_vector)

    def popular(self, n: int, *, exclude: Iterable[str] = ()) -> list[ScoredItem]:
        """The ``n`` items with the most events in the window."""
        return self._popular(n, self._columns(exclude))

    def _popular(self, n: int, banned: npt.NDArray[np.int64]) -> list[ScoredItem]:
        order = self.popular_order
        if banned.size:
            order = order[~np.isin(order, banned)]
        top = order[:n]
        return [
            ScoredItem(self.item_ids[c], float(s))
            for c, s in zip(top.tolist(), self.popularity[top].tolist(), strict=True)
        ]

    def _top(
        self, scores: npt.NDArray[np.float32], n: int, banned: npt.NDArray[np.int64]
    ) -> list[ScoredItem]:
        """The ``n`` best columns of ``scores`` (a fresh array: modified in place)."""
        if banned.size:
            scores[banned] = -np.inf
        # Counting distinct banned columns costs a sort: only needed when n nears the catalogue.
        available = (
            scores.size if n + banned.size < scores.size else scores.size - np.unique(banned).size
        )
        k = min(n, available)
        if k <= 0:
            return []
        top = np.argpartition(scores, -k)[-k:] if k < scores.size else np.arange(scores.size)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [
            ScoredItem(self.item_ids[c], float(s))
            for c, s in zip(top.tolist(), scores[top].tolist(), strict=True)
        ]
