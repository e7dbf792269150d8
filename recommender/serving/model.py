"""A loaded snapshot, ready to answer queries: histories, scoring, filtering, similarity.

Pure: numpy and scipy only. A :class:`RecommenderModel` is immutable once built, so a server can
swap models by replacing one reference while in-flight requests finish on the old one. It serves
every model family (:mod:`recommender.models`) the same way: a request becomes a *history* (the
user's window items, their fresh events, their newest liked items in order), the family scores
it, and the seen, disliked and excluded items are left out here.

Answering is split in three steps so that a server can score many requests in one matrix product:
:meth:`RecommenderModel.query_for_user` / :meth:`~RecommenderModel.query_for_items` resolve a
request into a :class:`Query` (what to score, or nothing for the popularity fallback, and the
columns to leave out); :meth:`~RecommenderModel.score_many` scores a batch;
:meth:`~RecommenderModel.answer` picks the top items. :meth:`~RecommenderModel.recommend` does
all three for one request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..models import MAX_RECENT, FittedModel, History, LatentModel, family_of, model_class
from ..models.answers import Answer, AnswerSource, Contribution, Query, ScoredItem
from ..models.foldin import MAX_FOLD_IN_ITEMS, FoldIn
from ..models.histories import UserHistories
from ..models.popularity import PopularItems
from ..ratings import RatingScale
from ..snapshot import Snapshot
from .index import AnnSettings, ExactTopK, make_top_k, select_top

__all__ = [
    "MAX_FOLD_IN_ITEMS",
    "Answer",
    "AnswerSource",
    "Contribution",
    "Query",
    "RecommenderModel",
    "ScoredItem",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class RecommenderModel:
    """Answers queries from one snapshot, whatever its model family.

    Parameters
    ----------
    snapshot : Snapshot
        A loaded, verified snapshot (see :func:`recommender.snapshot.load_snapshot`).
    ann : AnnSettings, optional
        For latent families: when to find top items with an approximate graph instead of
        scoring every item (None: always exact). The graph is built here: construct models off
        the request path.
    """

    def __init__(self, snapshot: Snapshot, *, ann: AnnSettings | None = None) -> None:
        arrays = snapshot.arrays
        self.snapshot = snapshot
        self.version = snapshot.version
        self.manifest: dict[str, Any] = snapshot.manifest
        self.user_ids = snapshot.user_ids
        self.item_ids = snapshot.item_ids
        self.user_index = {user: row for row, user in enumerate(self.user_ids)}
        self.item_index = {item: col for col, item in enumerate(self.item_ids)}
        self.seen = sp.csr_matrix(
            (arrays["seen_weights"], arrays["seen_indices"], arrays["seen_indptr"]),
            shape=(len(self.user_ids), len(self.item_ids)),
        )
        if not self.seen.has_canonical_format:
            # Sorted, distinct columns per row (what the builder writes): a known user's history
            # is then their row as it is, with no per-request sort (see UserHistories.of).
            self.seen = self.seen.copy()
            self.seen.sum_duplicates()
        self.popularity: IntArray = arrays["popularity"]
        self.popular_items = PopularItems(
            self.item_ids, self.popularity, arrays["recent_popularity"]
        )
        #: The rating scale events are given in, if the builder declared one.
        self.ratings = RatingScale.from_dict(self.manifest.get("ratings"))
        #: Weight multiplier of an event at the window's newest time (with a half-life; else
        #: 1): fresh events are newer still, so they weigh at least as much (see the window).
        self.fresh_weight = float(self.manifest.get("window", {}).get("newest_weight", 1.0))
        self.histories = UserHistories(
            self.seen,
            arrays.get("recent_indptr"),
            arrays.get("recent_items"),
            self.item_index,
            self.fresh_weight,
        )
        self.family = family_of(self.manifest)
        model_section = self.manifest.get("model") or {}
        params = model_section.get("params") or self.manifest.get("params", {})
        cls = model_class(self.family)
        self.fitted: FittedModel = cls.from_arrays(
            {name: arrays[name] for name in cls.ARRAYS}, params, len(self.item_ids)
        )
        self.latent = isinstance(self.fitted, LatentModel)
        #: How top items are found: for latent families every item scored, or an HNSW graph
        #: (large catalogues); other families score every item.
        self.top_k: ExactTopK | None = (
            make_top_k(self.fitted.item_vectors, ann)
            if isinstance(self.fitted, LatentModel)
            else None
        )
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
        """Latent dimensions (0 for families without a latent space)."""
        if isinstance(self.fitted, LatentModel):
            return int(self.fitted.item_vectors.shape[1])
        return 0

    @property
    def approximate(self) -> bool:
        """Whether top items come from a graph (then scoring every item is work for a thread)."""
        return self.top_k is not None and self.top_k.approximate

    # ALS's arrays, for callers that know they serve ALS (tests, benchmarks, the seed API).
    @property
    def user_factors(self) -> FloatArray:
        return self._latent().user_vectors

    @property
    def item_factors(self) -> FloatArray:
        return self._latent().item_vectors

    @property
    def folding(self) -> FoldIn:
        return self._latent().folding  # type: ignore[attr-defined]

    def _latent(self) -> LatentModel:
        if not isinstance(self.fitted, LatentModel):
            raise AttributeError(f"a {self.family} model has no factors")
        return self.fitted

    def knows_user(self, user: str) -> bool:
        return user in self.user_index

    def covers(self, partition: int, offset: int) -> bool:
        """Whether the event at ``partition``/``offset`` was consumed before this snapshot."""
        return offset < self.positions.get(partition, 0)

    # -- a user's history ----------------------------------------------------------------------

    def seen_items(self, user: str) -> list[tuple[str, float]]:
        """Items (with summed weights) the user has in the snapshot's window."""
        row = self.user_index.get(user)
        if row is None:
            return []
        cols, weights = self.histories.seen_row(row)
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

    def history(self, user: str | None, fresh: Sequence[tuple[str, float]] = ()) -> History:
        """The user's window items plus fresh events (see :meth:`UserHistories.of`)."""
        return self.histories.of(None if user is None else self.user_index.get(user), fresh)

    # -- fold-in (latent families) ---------------------------------------------------------------

    def fold_in(
        self, cols: IntArray, weights: FloatArray, *, priority: IntArray | None = None
    ) -> FloatArray | None:
        """The user vector ALS would compute for these items: see :meth:`FoldIn.vector`."""
        return self.folding.vector(cols, weights, priority=priority)

    # -- queries -------------------------------------------------------------------------------

    def _query(
        self, history: History, n: int, offset: int, banned: list[IntArray], source: AnswerSource
    ) -> Query:
        likes = bool((history.weights > 0).any()) or history.recent.size > 0
        if isinstance(self.fitted, LatentModel):
            vector = self.fitted.vector(history) if likes or history.row is not None else None
            if vector is None:
                return Query(None, np.concatenate(banned), n, offset, "popular")
            return Query(vector, np.concatenate(banned), n, offset, source)
        if not likes:
            return Query(None, np.concatenate(banned), n, offset, "popular")
        return Query(None, np.concatenate(banned), n, offset, source, history)

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

        ``fresh`` are the user's events newer than this snapshot (item, weight). With any known
        to the model, the answer is computed from window and fresh events (``fold-in``);
        otherwise a known user is answered from the window (``personalised``: ALS uses the
        trained factors) and anyone else gets the most popular items (``popular``). Seen items
        (window and fresh) are left out when ``filter_seen``; ``exclude`` always is, and so are
        items the user dislikes. Should nothing be computable (a fold-in without a finite
        solution, a user who likes nothing yet), the trained factors or popularity answer:
        never an error.
        """
        history = self.history(user, fresh)
        seen = history.cols if filter_seen else history.cols[history.weights < 0]
        source: AnswerSource = "fold-in" if history.fresh else "personalised"
        if history.row is None and not history.fresh:
            source = "popular"
        return self._query(history, n, offset, [self.columns(exclude), seen], source)

    def query_for_items(
        self, items: Sequence[str], n: int, *, exclude: Iterable[str] = (), offset: int = 0
    ) -> Query:
        """Recommendations for an anonymous session that touched ``items`` (in that order;
        nothing is stored)."""
        cols = self.columns(items)
        banned = [self.columns(exclude), cols]
        distinct = np.unique(cols)
        history = History(
            distinct,
            np.ones(distinct.size, dtype=np.float32),
            recent=cols[-MAX_RECENT:],
            fresh=True,
            priority=distinct,
        )
        return self._query(history, n, offset, banned, "fold-in")

    def score_many(self, keys: Sequence[FloatArray | History]) -> FloatArray:
        """Scores of every item for each key (a latent family's vector, or a history): one
        batch (rows x items, fresh and writable). One matrix product for a batch reads the
        model once instead of once per request (see :class:`~.index.ExactTopK`)."""
        if self.top_k is not None:
            return self.top_k.score_many(np.stack([np.asarray(k) for k in keys]))
        return self.fitted.score([k for k in keys if isinstance(k, History)])

    def score(self, key: FloatArray | History) -> FloatArray:
        """Scores of every item for one key (fresh and writable)."""
        return self.score_many([key])[0]

    def answer(
        self,
        query: Query,
        scores: FloatArray | None = None,
        *,
        excluded: IntArray | None = None,
        allowed: IntArray | None = None,
    ) -> Answer:
        """The top items for a resolved query; ``scores`` may be precomputed (and are modified).

        ``excluded``: columns never to recommend besides the query's own (items that may not be
        shown, outside the catalogue, in an excluded category); ``allowed``: the only columns
        that may be (a category filter), or None for any.
        """
        banned = query.banned
        if excluded is not None and excluded.size:
            banned = np.concatenate((banned, excluded))
        wanted = query.n + query.offset
        if allowed is not None:
            among = self._among(query, allowed, banned, wanted, scores)
            return Answer(among[query.offset :], query.source)
        if query.vector is not None and self.top_k is not None:
            cols, found = self.top_k.top(query.vector, wanted, banned, scores)
            items = self._scored(cols, found)
        elif query.history is not None:
            if scores is None:
                scores = self.fitted.score([query.history])[0]
            if banned.size:
                scores[banned] = -np.inf
            cols = select_top(scores, wanted)
            items = self._scored(cols, scores[cols])
        else:
            return Answer(self.popular_items.top(wanted, banned)[query.offset :], query.source)
        return Answer(items[query.offset :], query.source, cols[query.offset :])

    def _among(
        self,
        query: Query,
        allowed: IntArray,
        banned: IntArray,
        wanted: int,
        scores: FloatArray | None = None,
    ) -> list[ScoredItem]:
        """The top items among ``allowed`` columns only: scored there alone (a narrow category
        costs what its items cost, with or without a graph), so ``n`` come back whenever the
        category holds that many eligible items."""
        if banned.size and allowed.size:
            allowed = allowed[~np.isin(allowed, banned)]
        if allowed.size == 0:
            return []
        if query.vector is None and query.history is None:
            return self.popular(wanted, allowed=allowed)
        if scores is not None:  # already computed (batched with other requests)
            scores = scores[allowed]
        elif query.vector is not None and isinstance(self.fitted, LatentModel):
            items = np.asarray(self.fitted.item_vectors[allowed], dtype=np.float32)
            scores = items @ np.asarray(query.vector, dtype=np.float32)
        else:
            assert query.history is not None
            scores = self.fitted.score([query.history])[0][allowed]
        top = select_top(np.asarray(scores, dtype=np.float32), wanted)
        return self._scored(allowed[top], scores[top])

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
        self,
        n: int,
        *,
        exclude: Iterable[str] = (),
        offset: int = 0,
        recent: bool = False,
        excluded: IntArray | None = None,
        allowed: IntArray | None = None,
    ) -> list[ScoredItem]:
        """The ``n`` items with the most events in the window (``recent``: recency-weighted),
        never ``excluded`` columns, only ``allowed`` ones when given."""
        banned = self.columns(exclude)
        if excluded is not None and excluded.size:
            banned = np.concatenate((banned, excluded))
        return self.popular_items.top(n + offset, banned, recent=recent, allowed=allowed)[offset:]

    def _scored(self, cols: IntArray, scores: FloatArray) -> list[ScoredItem]:
        ids = self.item_ids
        return [
            ScoredItem(ids[c], float(s))
            for c, s in zip(cols.tolist(), scores.tolist(), strict=True)
        ]

    # -- similarity and explanations -----------------------------------------------------------

    def similar_items(
        self,
        item: str,
        n: int,
        *,
        excluded: IntArray | None = None,
        allowed: IntArray | None = None,
    ) -> list[ScoredItem] | None:
        """Items most similar to ``item`` as the model family sees them (ALS: cosine of the
        factors), never ``excluded`` columns, only ``allowed`` ones when given; None: unknown
        item."""
        col = self.item_index.get(item)
        if col is None:
            return None
        if (excluded is None or not excluded.size) and allowed is None:
            return self._scored(*self.fitted.similar_items(col, n))
        # Deep enough to fill n after filtering: everything, for a narrow filter.
        depth = self.n_items if allowed is not None else n + int(excluded.size)  # type: ignore[union-attr]
        cols, scores = self.fitted.similar_items(col, min(depth, self.n_items))
        keep = np.ones(cols.size, bool)
        if excluded is not None and excluded.size:
            keep &= ~np.isin(cols, excluded)
        if allowed is not None:
            keep &= np.isin(cols, allowed)
        return self._scored(cols[keep][:n], scores[keep][:n])

    @property
    def has_user_vectors(self) -> bool:
        return self.fitted.has_user_vectors

    def similar_users(self, user: str, n: int) -> list[ScoredItem] | None:
        """Users closest to ``user`` by cosine of their vectors (None: unknown user). Only for
        families with user vectors (see :attr:`has_user_vectors`)."""
        row = self.user_index.get(user)
        if row is None or not isinstance(self.fitted, LatentModel):
            return None
        rows, scores = self.fitted.similar_users(row, min(n, self.n_users - 1))
        return [
            ScoredItem(self.user_ids[r], float(s))
            for r, s in zip(rows.tolist(), scores.tolist(), strict=True)
        ]

    def explain(
        self, user: str, item: str, n: int, *, fresh: Sequence[tuple[str, float]] = ()
    ) -> tuple[float, list[Contribution]] | None:
        """Which of the user's items contributed most to ``item``'s score (ALS: as implicit's
        ``explain``). Returns (score, top-n contributions), or None when the item or the user's
        history is unknown."""
        col = self.item_index.get(item)
        history = self.history(user, fresh)
        if col is None or history.cols.size == 0:
            return None
        score, cols, contributions = self.fitted.explain(history, col, n)
        return score, [
            Contribution(self.item_ids[c], float(v))
            for c, v in zip(cols.tolist(), contributions.tolist(), strict=True)
        ]
