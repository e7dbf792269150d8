"""The ranking stage filled by a learned ranker: the family's top ``candidates`` items for a
request, reordered by a LightGBM model over their features (see :mod:`recommender.ranker`).

Features are computed as the builder computed them when training: the family's score and rank
of each candidate, the window's item stats (popularity, trend, age) and the user's stats
(activity, liked share, time since the last event, days active), a user's fresh events counted
at once, as fold-in counts them; where the ranker learnt from the catalogue, the items'
attributes, categories and labels as the snapshot recorded them (the matches against the user's
liked items, fresh ones included). Requests that reach the stage together are ranked in one
call (:class:`~recommender.serving.batching.RankBatch`). The clock is the window's: its newest
event time plus the time since the snapshot was made, so a window of old events (a bulk load of
history) is not years stale. Derived from one loaded model and dropped with it (it lives in
that model's pipeline).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..features import ITEM_FEATURES, USER_FEATURES, ItemInformation, ItemStats, UserStats
from ..logs import RateLimitedLog
from ..models.answers import Answer, ScoredItem
from ..ranker.candidates import ATTRIBUTE_PREFIX, MATCH_FEATURE, MATCH_LABELS
from ..ranker.model import LearnedRanker
from ..ranker.window_fit import SOURCE
from .batching import RankBatch
from .model import RecommenderModel
from .query import Ask

__all__ = ["LearnedRanking"]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class LearnedRanking:
    """A :class:`~recommender.serving.ranking.Ranker` with a learned model."""

    def __init__(
        self,
        ranker: LearnedRanker,
        items: ItemStats,
        users: UserStats,
        *,
        model: RecommenderModel,
        candidates: int,
        trained_candidates: int | None = None,
        newest_ms: int,
        made_at: float,
        catalogue: ItemInformation | None = None,
    ) -> None:
        self.ranker = ranker
        self.items, self.users = items, users
        self.model = model
        self.candidates = candidates
        #: Training capped the family's rank at this plus one (what :meth:`explain` says).
        self.trained_candidates = trained_candidates or candidates
        self.newest_ms, self.made_at = newest_ms, made_at
        self._names = ranker.schema.names
        #: The schema's ``attr.*`` columns, in the order of the catalogue's attribute columns.
        self._attributes = tuple(n for n in self._names if n.startswith(ATTRIBUTE_PREFIX))
        names = () if catalogue is None else catalogue.attribute_names
        if self._attributes and self._attributes != tuple(ATTRIBUTE_PREFIX + n for n in names):
            raise ValueError("the snapshot's item attributes do not match the ranker's schema")
        #: What the catalogue said of the model's items when the snapshot was made.
        self.catalogue = catalogue
        self._batch = RankBatch(self.rank_many)
        #: Requests the ranker failed to rank (answered in the family's order).
        self.failures = 0
        self._failures = RateLimitedLog(log, interval=60.0)

    @classmethod
    def of(cls, model: RecommenderModel, *, candidates: int | None = None) -> LearnedRanking | None:
        """The snapshot's serving ranker, or None (raises ValueError for a broken one);
        ``candidates``: how many of the family's top items it reorders (None: as many as it
        was trained on)."""
        section: Any = model.manifest.get("ranker")
        arrays = model.snapshot.arrays
        if not isinstance(section, dict) or section.get("serves") is not True:
            return None
        if "ranker_model" not in arrays:
            return None
        trained = section.get("candidates")
        if not isinstance(trained, int) or not 1 <= trained <= 10_000:
            raise ValueError("the ranker's candidates is not a count from 1 to 10000")
        ranker = LearnedRanker.from_arrays(arrays, section)
        attribute_columns = tuple(n for n in ranker.schema.names if n.startswith(ATTRIBUTE_PREFIX))
        return cls(
            ranker,
            ItemStats(
                np.asarray(arrays["feature_item_popularity"]),
                np.asarray(arrays["feature_item_recent"]),
                np.asarray(arrays["feature_item_first_ms"]),
            ),
            UserStats(
                np.asarray(arrays["feature_user_events"]),
                np.asarray(arrays["feature_user_liked"]),
                np.asarray(arrays["feature_user_first_ms"]),
                np.asarray(arrays["feature_user_last_ms"]),
            ),
            model=model,
            candidates=trained if candidates is None else candidates,
            trained_candidates=trained,
            newest_ms=int(section.get("newest_ms") or 0),
            made_at=float(model.manifest.get("created_at") or time.time()),
            catalogue=_catalogue(arrays, attribute_columns, len(model.item_ids)),
        )

    def now_ms(self) -> int:
        return self.newest_ms + int(max(0.0, time.time() - self.made_at) * 1000)

    def features(self, ask: Ask, answer: Answer) -> FloatArray:
        """The candidates' rows in the ranker's schema order (NaN: unknown, the default then)."""
        return self.features_many([ask], [answer])

    def features_many(self, asks: Sequence[Ask], answers: Sequence[Answer]) -> FloatArray:
        """The rows of several requests' candidates, one request after another: computed
        together, so that the per-call cost of each step is paid once for a batch."""
        now = self.now_ms()
        index = self.model.item_index
        sizes = [len(answer.items) for answer in answers]
        parts = []
        for answer, n in zip(answers, sizes, strict=True):
            cols = answer.cols
            if cols is None or cols.size != n:  # new items among them: looked up (-1: unknown)
                cols = np.fromiter((index.get(s.item, -1) for s in answer.items), np.int64, n)
            parts.append(cols)
        cols = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        known = cols >= 0
        safe = np.where(known, cols, 0)
        item_rows = self.items.matrix(safe, now)
        item_rows[~known] = np.nan
        fresh = [ask.fresh if ask.kind == "user" else () for ask in asks]
        user_rows = self.users.matrix(
            np.array([self._user_row(ask) for ask in asks], np.int64),
            now,
            fresh_events=np.array([len(f) for f in fresh], np.int64),
            fresh_liked=np.array([sum(1 for _, w in f if w > 0) for f in fresh], np.int64),
            fresh_last_ms=np.array([now if f else -1 for f in fresh], np.int64),
        )
        user_rows = np.repeat(user_rows, sizes, axis=0)
        columns: dict[str, FloatArray] = {
            f"{SOURCE}.score": np.fromiter(
                (s.score for answer in answers for s in answer.items), np.float32, cols.size
            ),
            f"{SOURCE}.rank": np.concatenate(
                [np.arange(1, n + 1, dtype=np.float32) for n in sizes]
            ),
        }
        for k, name in enumerate(ITEM_FEATURES):
            columns[name] = item_rows[:, k]
        for k, name in enumerate(USER_FEATURES):
            columns[name] = user_rows[:, k]
        catalogue = self.catalogue
        if catalogue is not None:
            if catalogue.attributes is not None and self._attributes:
                rows = catalogue.attributes[safe]
                rows[~known] = np.nan
                for k, name in enumerate(self._attributes):
                    columns[name] = rows[:, k]
            matches = [
                (name, matcher)
                for name, matcher in (
                    (MATCH_FEATURE, catalogue.category_index),
                    (MATCH_LABELS, catalogue.label_index),
                )
                if matcher is not None and name in self._names
            ]
            if matches:
                liked = [self._liked(ask) for ask in asks]
                per_request = np.split(safe, np.cumsum(sizes)[:-1])
                for name, matcher in matches:
                    columns[name] = np.where(known, matcher.match(liked, per_request), np.nan)
        out = np.full((cols.size, len(self._names)), np.nan, np.float32)
        for k, name in enumerate(self._names):
            if name in columns:
                out[:, k] = columns[name]
        return out

    def _user_row(self, ask: Ask) -> int:
        return self.model.user_index.get(ask.user, -1) if ask.user is not None else -1

    def _liked(self, ask: Ask) -> IntArray:
        """The asker's liked item columns, window and fresh events (a session's: its items), as
        the builder's histories give them."""
        if ask.kind == "items":
            return np.unique(self.model.columns(ask.items)).astype(np.int64)
        if ask.kind != "user" or ask.user is None:
            return np.zeros(0, np.int64)
        history = self.model.history(ask.user, ask.fresh)
        return history.cols[history.weights > 0].astype(np.int64)

    async def rank(self, ask: Ask, answer: Answer) -> Answer:
        """The best ``ask.n`` of the answer's items by the ranker's score: scored with the
        other requests that reach this stage in the same turn of the event loop."""
        if len(answer.items) < 2:
            return Answer(answer.items[: ask.n], answer.source)
        try:
            return await self._batch.rank(ask, answer)
        except Exception as exc:  # the family's order answers; never a failed request
            self.failures += 1
            self._failures.exception(
                type(exc).__name__, "the ranker failed, answering in the family's order: %s", exc
            )
            return Answer(answer.items[: ask.n], answer.source)

    def rank_many(self, asks: Sequence[Ask], answers: Sequence[Answer]) -> list[Answer]:
        """Each request's best ``ask.n`` items, all scored in one prediction."""
        scores = self.ranker.score(self.features_many(asks, answers))
        ranked, at = [], 0
        for ask, answer in zip(asks, answers, strict=True):
            mine = scores[at : at + len(answer.items)]
            at += len(answer.items)
            order = np.argsort(-mine, kind="stable")[: ask.n]
            items = answer.items
            ranked.append(
                Answer(
                    [ScoredItem(items[k].item, float(mine[k])) for k in order.tolist()],
                    answer.source,
                )
            )
        return ranked

    def explain(self, ask: Ask, item: str, *, top: int = 5) -> dict[str, Any] | None:
        """Which features lifted (or sank) ``item`` for the asker: LightGBM's per-feature
        contributions to its ranker score, the largest first (None: the model cannot score the
        item for this user). The family's rank is its place among all unseen items, capped at
        ``candidates + 1`` as training capped it."""
        from .query import resolve

        col = self.model.item_index.get(item)
        query = resolve(self.model, replace(ask, n=1, offset=0))
        key = query.vector if query.vector is not None else query.history
        if col is None or key is None:
            return None
        scores = self.model.score(key)
        if query.banned.size:
            scores[query.banned] = -np.inf
        score = float(scores[col])
        rank = min(int(np.count_nonzero(scores > score)) + 1, self.trained_candidates + 1)
        row = self.features(ask, Answer([ScoredItem(item, score)], query.source))
        row[0, self._names.index(f"{SOURCE}.rank")] = rank
        contributions = self.ranker.contributions(row)[0]
        filled = self.ranker.schema.fill(row.copy())[0]
        order = np.argsort(-np.abs(contributions[:-1]), kind="stable")[:top]
        return {
            "score": float(contributions.sum()),
            "expected": float(contributions[-1]),
            "features": [
                {
                    "feature": self._names[k],
                    "value": float(filled[k]),
                    "contribution": round(float(contributions[k]), 5),
                }
                for k in order.tolist()
            ],
        }


def _catalogue(arrays: Any, names: tuple[str, ...], n_items: int) -> ItemInformation | None:
    """What the snapshot says the catalogue held (``CATALOGUE_ARRAYS``), where the ranker learnt
    from it: item attributes (the schema's ``attr.*`` ``names``), categories and labels."""
    if "feature_item_attributes" not in arrays:
        return None
    sets = []
    for key in ("category", "label"):
        indptr = np.asarray(arrays[f"feature_item_{key}_indptr"])
        indices = np.asarray(arrays[f"feature_item_{key}_indices"])
        width = int(indices.max()) + 1 if indices.size else 0
        sets.append(
            sp.csr_matrix(
                (np.ones(indices.size, np.float32), indices, indptr), shape=(n_items, width)
            )
            if width
            else None
        )
    attributes = np.asarray(arrays["feature_item_attributes"], np.float32)
    attribute_names = tuple(n.removeprefix(ATTRIBUTE_PREFIX) for n in names)
    if attributes.shape[1] != len(attribute_names):
        raise ValueError("the snapshot's item attributes do not match the ranker's schema")
    return ItemInformation(
        sets[0], attributes if attribute_names else None, attribute_names, sets[1]
    )
