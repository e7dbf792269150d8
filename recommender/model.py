"""A loaded snapshot, ready to answer queries: scoring, filtering, fold-in, similarity.

Pure: numpy and scipy only. A :class:`RecommenderModel` is immutable once built, so a server can
swap models by replacing one reference while in-flight requests finish on the old one.

Answering is split in three steps so that a server can score many requests in one matrix product:
:meth:`RecommenderModel.query_for_user` / :meth:`~RecommenderModel.query_for_items` resolve a
request into a :class:`Query` (a user vector, or none for the popularity fallback, and the columns
to leave out); :meth:`~RecommenderModel.score_many` scores vectors; :meth:`~RecommenderModel.answer`
picks the top items. :meth:`~RecommenderModel.recommend` does all three for one request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .events import clip_pair_weights
from .foldin import MAX_FOLD_IN_ITEMS, FoldIn, solve_symmetric
from .index import AnnSettings, make_top_k
from .ratings import RatingScale
from .snapshot import Snapshot

__all__ = [
    "MAX_FOLD_IN_ITEMS",
    "Answer",
    "AnswerSource",
    "Contribution",
    "Query",
    "RecommenderModel",
    "ScoredItem",
]

AnswerSource = Literal["personalised", "fold-in", "popular"]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ScoredItem:
    item: str
    score: float


@dataclass(frozen=True, slots=True)
class Contribution:
    """How much one of the user's items contributed to an item's score."""

    item: str
    contribution: float


@dataclass(frozen=True, slots=True)
class Answer:
    """Top-n items and how they were found."""

    items: list[ScoredItem]
    source: AnswerSource

    @property
    def fallback(self) -> bool:
        return self.source == "popular"


@dataclass(frozen=True, slots=True)
class Query:
    """A resolved request: whom to score (``vector``; None: popularity) and what to leave out."""

    vector: FloatArray | None
    banned: IntArray
    n: int
    offset: int
    source: AnswerSource


class RecommenderModel:
    """Scores items for users of one snapshot.

    Parameters
    ----------
    snapshot : Snapshot
        A loaded, verified snapshot (see :func:`recommender.snapshot.load_snapshot`).
    ann : AnnSettings, optional
        When to find top items with an approximate graph instead of scoring every item (None:
        always exact). The graph is built here: construct models off the request path.
    """

    def __init__(self, snapshot: Snapshot, *, ann: AnnSettings | None = None) -> None:
        arrays = snapshot.arrays
        self.snapshot = snapshot
        self.version = snapshot.version
        self.manifest: dict[str, Any] = snapshot.manifest
        self.user_ids = snapshot.user_ids
        self.item_ids = snapshot.item_ids
        self.user_factors: FloatArray = arrays["user_factors"]
        self.item_factors: FloatArray = arrays["item_factors"]
        self.user_index = {user: row for row, user in enumerate(self.user_ids)}
        self.item_index = {item: col for col, item in enumerate(self.item_ids)}
        self.seen = sp.csr_matrix(
            (arrays["seen_weights"], arrays["seen_indices"], arrays["seen_indptr"]),
            shape=(len(self.user_ids), len(self.item_ids)),
        )
        self.popularity: IntArray = arrays["popularity"]
        # Most popular first; ties broken by column for a stable answer.
        self.popular_order = np.lexsort((np.arange(self.popularity.size), -self.popularity))
        self.recent_popularity: FloatArray = arrays["recent_popularity"]
        self.recent_order = np.lexsort((np.arange(self.popularity.size), -self.recent_popularity))
        params = self.manifest.get("params", {})
        #: The rating scale events are given in, if the builder declared one.
        self.ratings = RatingScale.from_dict(self.manifest.get("ratings"))
        #: Weight multiplier of an event at the window's newest time (with a half-life; else
        #: 1): fresh events are newer still, so they weigh at least as much (see the window).
        self.fresh_weight = float(self.manifest.get("window", {}).get("newest_weight", 1.0))
        self.alpha = float(params.get("alpha", 1.0))
        self.regularization = float(params.get("regularization", 0.0))
        # What every fold-in shares (ALS's YᵀY + λI), computed once per snapshot.
        self.folding = FoldIn(
            self.item_factors, alpha=self.alpha, regularization=self.regularization
        )
        #: How top items are found: every item scored, or an HNSW graph (large catalogues).
        self.top_k = make_top_k(self.item_factors, ann)
        self._user_norms: FloatArray | None = None
        self.positions: dict[int, int] = {
            int(p): int(pos["next_offset"])
            for p, pos in self.manifest.get("partitions", {}).items()
        }

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def factors(self) -> int:
        return int(self.item_factors.shape[1])

    def knows_user(self, user: str) -> bool:
        return user in self.user_index

    def covers(self, partition: int, offset: int) -> bool:
        """Whether the event at ``partition``/``offset`` was consumed before this snapshot."""
        return offset < self.positions.get(partition, 0)

    # -- a user's history ----------------------------------------------------------------------

    def _seen_row(self, row: int) -> tuple[IntArray, FloatArray]:
        lo, hi = self.seen.indptr[row], self.seen.indptr[row + 1]
        return self.seen.indices[lo:hi].astype(np.int64), self.seen.data[lo:hi]

    def seen_items(self, user: str) -> list[tuple[str, float]]:
        """Items (with summed weights) the user has in the snapshot's window."""
        row = self.user_index.get(user)
        if row is None:
            return []
        cols, weights = self._seen_row(row)
        return [
            (self.item_ids[c], float(w))
            for c, w in zip(cols.tolist(), weights.tolist(), strict=True)
        ]

    def columns(self, items: Iterable[str]) -> IntArray:
        """Columns of the known items among ``items`` (unknown ones are dropped)."""
        index = self.item_index
        return np.fromiter(
            (c for c in (index.get(item) for item in items) if c is not None), dtype=np.int64
        )

    def _history(
        self, user: str | None, fresh: Sequence[tuple[str, float]]
    ) -> tuple[IntArray, FloatArray]:
        """The user's window items plus fresh events, as distinct columns and summed weights."""
        cols: list[IntArray] = []
        weights: list[FloatArray] = []
        row = None if user is None else self.user_index.get(user)
        if row is not None:
            c, w = self._seen_row(row)
            cols.append(c)
            weights.append(np.asarray(w, dtype=np.float32))
        if fresh:
            index = self.item_index
            scale = self.fresh_weight
            known = [(index[item], weight * scale) for item, weight in fresh if item in index]
            if known:
                cols.append(np.array([c for c, _ in known], dtype=np.int64))
                weights.append(np.array([w for _, w in known], dtype=np.float32))
        if not cols:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        all_cols, all_weights = np.concatenate(cols), np.concatenate(weights)
        distinct, inverse = np.unique(all_cols, return_inverse=True)
        summed = clip_pair_weights(np.bincount(inverse.ravel(), weights=all_weights))
        return distinct, summed

    # -- fold-in -------------------------------------------------------------------------------

    def fold_in(
        self, cols: IntArray, weights: FloatArray, *, priority: IntArray | None = None
    ) -> FloatArray | None:
        """The user vector ALS would compute for these items: see :meth:`FoldIn.vector`."""
        return self.folding.vector(cols, weights, priority=priority)

    # -- queries -------------------------------------------------------------------------------

    def query_for_user(
        self,
        user: str,
        n: int,
        *,
        filter_seen: bool = True,
        exclude: Iterable[str] = (),
        offset: int = 0,
        fresh: Sequence[tuple[str, float]] = (),
    ) -> Query:
        """Resolve a recommendation request for ``user``.

        ``fresh`` are the user's events newer than this snapshot (item, weight). With any, the
        user's vector is folded in from window and fresh events (``fold-in``); otherwise a known
        user is scored with their trained factors (``personalised``) and anyone else gets the
        most popular items (``popular``). Seen items (window and fresh) are left out when
        ``filter_seen``; ``exclude`` always is, and so are items the user dislikes. Should a
        fold-in have no finite solution (or the user like nothing yet), the trained factors (or
        popularity) answer instead: never an error.
        """
        banned = [self.columns(exclude)]
        row = self.user_index.get(user)
        vector: FloatArray | None = None
        source: AnswerSource = "popular"
        cols, weights = self._history(user, fresh) if fresh else (None, None)
        if cols is not None and weights is not None and cols.size:
            vector = self.fold_in(cols, weights, priority=self.columns(item for item, _ in fresh))
            source = "fold-in"
            banned.append(cols if filter_seen else cols[weights < 0])
        elif row is not None:
            seen, seen_weights = self._seen_row(row)
            banned.append(seen if filter_seen else seen[seen_weights < 0])
        if vector is None and row is not None:
            vector, source = self.user_factors[row], "personalised"
        elif vector is None:
            source = "popular"
        return Query(vector, np.concatenate(banned), n, offset, source)

    def query_for_items(
        self, items: Sequence[str], n: int, *, exclude: Iterable[str] = (), offset: int = 0
    ) -> Query:
        """Recommendations for an anonymous session that touched ``items`` (nothing is stored)."""
        cols = self.columns(items)
        banned = np.concatenate((self.columns(exclude), cols))
        if cols.size == 0:
            return Query(None, banned, n, offset, "popular")
        distinct = np.unique(cols)
        vector = self.fold_in(distinct, np.ones(distinct.size, dtype=np.float32))
        return Query(vector, banned, n, offset, "popular" if vector is None else "fold-in")

    def score_many(self, vectors: FloatArray) -> FloatArray:
        """Scores of every item for each row of ``vectors`` (users x items, fresh and writable).

        One matrix product for a batch reads the item factors once instead of once per user
        (see :class:`~recommender.index.ExactTopK` for the measurements).
        """
        return self.top_k.score_many(vectors)

    def score(self, vector: FloatArray) -> FloatArray:
        """Scores of every item for one user vector (fresh and writable)."""
        return self.top_k.score_many(np.asarray(vector, dtype=np.float32)[None, :])[0]

    def answer(
        self, query: Query, scores: FloatArray | None = None, *, excluded: IntArray | None = None
    ) -> Answer:
        """The top items for a resolved query; ``scores`` may be precomputed (and are modified).

        ``excluded``: columns never to recommend besides the query's own (e.g. items outside
        the catalogue).
        """
        banned = query.banned
        if excluded is not None and excluded.size:
            banned = np.concatenate((banned, excluded))
        wanted = query.n + query.offset
        if query.vector is None:
            items = self._popular(wanted, banned)
        else:
            cols, found = self.top_k.top(query.vector, wanted, banned, scores)
            items = self._scored(cols, found)
        return Answer(items[query.offset :], query.source)

    def recommend(
        self,
        user: str,
        n: int,
        *,
        filter_seen: bool = True,
        exclude: Iterable[str] = (),
        offset: int = 0,
        fresh: Sequence[tuple[str, float]] = (),
    ) -> Answer:
        """The top-``n`` items for ``user`` (see :meth:`query_for_user`)."""
        query = self.query_for_user(
            user, n, filter_seen=filter_seen, exclude=exclude, offset=offset, fresh=fresh
        )
        return self.answer(query)

    def popular(
        self, n: int, *, exclude: Iterable[str] = (), offset: int = 0, recent: bool = False
    ) -> list[ScoredItem]:
        """The ``n`` items with the most events in the window (``recent``: recency-weighted)."""
        return self._popular(n + offset, self.columns(exclude), recent=recent)[offset:]

    def _popular(self, n: int, banned: IntArray, *, recent: bool = False) -> list[ScoredItem]:
        order, score = (
            (self.recent_order, self.recent_popularity)
            if recent
            else (self.popular_order, self.popularity)
        )
        if banned.size:
            order = order[~np.isin(order, banned)]
        top = order[:n]
        return [
            ScoredItem(self.item_ids[c], float(s))
            for c, s in zip(top.tolist(), score[top].tolist(), strict=True)
        ]

    def _scored(self, cols: IntArray, scores: FloatArray) -> list[ScoredItem]:
        ids = self.item_ids
        return [
            ScoredItem(ids[c], float(s))
            for c, s in zip(cols.tolist(), scores.tolist(), strict=True)
        ]

    # -- similarity and explanations -----------------------------------------------------------

    def similar_items(self, item: str, n: int) -> list[ScoredItem] | None:
        """Items closest to ``item`` by cosine of their factors (None: unknown item)."""
        col = self.item_index.get(item)
        if col is None:
            return None
        return self._scored(*self.top_k.similar(col, n))

    def similar_users(self, user: str, n: int) -> list[ScoredItem] | None:
        """Users closest to ``user`` by cosine of their factors (None: unknown user)."""
        row = self.user_index.get(user)
        if row is None:
            return None
        if self._user_norms is None:
            self._user_norms = np.linalg.norm(self.user_factors, axis=1).astype(np.float32)
        norms = self._user_norms * max(float(self._user_norms[row]), 1e-12)
        scores = np.asarray(self.user_factors @ self.user_factors[row], dtype=np.float32)
        scores /= np.maximum(norms, 1e-12)
        scores[row] = -np.inf
        k = min(n, self.n_users - 1)
        if k <= 0:
            return []
        top = np.argpartition(scores, -k)[-k:]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [ScoredItem(self.user_ids[r], float(scores[r])) for r in top.tolist()]

    def explain(
        self, user: str, item: str, n: int, *, fresh: Sequence[tuple[str, float]] = ()
    ) -> tuple[float, list[Contribution]] | None:
        """Which of the user's items contributed most to ``item``'s score, as in implicit's
        ``explain``: score = Σ_j c_j · y_itemᵀ A⁻¹ y_j, with A the user's normal-equation matrix.

        Returns (score, top-n contributions), or None when the item or the user's history is
        unknown.
        """
        col = self.item_index.get(item)
        cols, weights = self._history(user, fresh)
        if col is None or cols.size == 0:
            return None
        a, _ = self.folding.system(cols, weights)
        y = np.asarray(self.item_factors[cols], dtype=np.float64)
        wanted = np.asarray(self.item_factors[col], np.float64)
        target = solve_symmetric(a, wanted)
        if target is None:  # no finite A⁻¹: fall back to plain similarity of the factors
            target = wanted
        # As implicit's explain: dislikes and neutral ratings contribute nothing.
        contributions = self.alpha * np.maximum(weights.astype(np.float64), 0.0) * (y @ target)
        order = np.argsort(-contributions, kind="stable")[:n]
        top = [
            Contribution(self.item_ids[cols[k]], float(contributions[k])) for k in order.tolist()
        ]
        return float(contributions.sum()), top
