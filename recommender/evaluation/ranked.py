"""The learned ranking stage as an offline row: a family's top ``candidates`` items for each test
user, reordered by a ranker trained as the builder trains it (a time split of the training
events, :func:`recommender.ranker.window_fit.train_on_window`, pinned on), with the item and user
features of all training events at their newest time, as the server computes them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..models import (
    FittedModel,
    Sequences,
    Setting,
    TrainingData,
    make_family,
    row_histories,
)
from ..ranker import Context, candidate_table, top_by_score
from ..ranker.window_fit import (
    CANDIDATES,
    SOURCE,
    RankerOutcome,
    train_on_window,
    window_features,
)
from ..user_metrics import paired_bootstrap
from ..window import WindowEvents
from .models import Recommender
from .offline import ModelResult

__all__ = ["RankedModel", "ranked_sentence"]

IntArray = npt.NDArray[np.int64]


@dataclass
class RankedModel:
    """A :class:`~recommender.evaluation.models.Recommender`: ``setting``'s family, then the
    ranker."""

    setting: Setting
    events: WindowEvents
    sequences: Sequences
    name: str = ""
    candidates: int = CANDIDATES
    seed: int = 42
    outcome: RankerOutcome | None = None
    _model: FittedModel | None = None
    _train: sp.csr_matrix | None = None
    _context: Context | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or f"{self.setting.family} + learned ranker"

    def fit(self, train: sp.csr_matrix) -> float:
        started = time.perf_counter()
        family = make_family(self.setting.family)
        params = family.validate(self.setting.params)
        self.outcome = train_on_window(
            self.events, lambda data: family.fit(data, params), mode="on", seed=self.seed
        )
        self._model = family.fit(TrainingData(train, self.sequences), params)
        self._train = train
        features = window_features(self.events)
        self._context = Context(features.items, features.users, features.newest_ms)
        return time.perf_counter() - started

    def recommend(self, users: IntArray, k: int) -> IntArray:
        assert self._model is not None and self._train is not None and self._context is not None
        assert self.outcome is not None
        fit = self.outcome.fit
        train, out = self._train, []
        for lo in range(0, users.size, 256):
            batch = users[lo : lo + 256]
            histories = row_histories(train, batch.tolist(), self.sequences)
            table = candidate_table(
                {SOURCE: self._model.score},
                histories,
                batch,
                self._context,
                per_source=self.candidates,
            )
            scores: npt.NDArray[np.float64]
            if fit is None:  # too few users to learn from: the family's own order
                rank = table.features[:, table.names.index(f"{SOURCE}.rank")]
                scores = -rank.astype(np.float64)
            else:
                scores = fit.ranker.score(table.features)
            out.append(top_by_score(table, scores, batch.size, k))
        return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def ranked_sentence(
    ranked: RankedModel,
    by_model: Mapping[int, ModelResult],
    first: Recommender | None,
    k: int,
    *,
    seed: int,
) -> str:
    """What the ranker measured on the training events' own time split (against the family's
    order and a linear blend of the same features; the recall ceiling of its candidates) and,
    on the test users, its row against the family's row it reorders (paired bootstrap)."""
    outcome = ranked.outcome
    if outcome is None or outcome.fit is None:
        why = "" if outcome is None else f": {outcome.reason}"
        return f"The learned ranker was not trained{why}; its row is the family's own order."
    fit = outcome.fit
    c = fit.comparison
    text = (
        f"The learned ranker ({fit.ranker.objective}, {ranked.candidates} candidates from "
        f"{ranked.setting.family}) learnt on the training events' newest fifth: on held-out "
        f"users there, NDCG@10 {fit.ranker_ndcg:.4f} against the family's order "
        f"{fit.first_stage_ndcg:.4f} (interval [{c.low:+.4f}, {c.high:+.4f}], {c.users:,} "
        f"users) and a linear blend of the same features {fit.blend_ndcg:.4f}; its candidates "
        f"held {fit.recall_ceiling:.0%} of those users' liked items (the ceiling)."
    )
    if first is None or id(first) not in by_model:
        return text
    ours, theirs = by_model[id(ranked)], by_model[id(first)]
    t = paired_bootstrap(ours.user_ndcg[k], theirs.user_ndcg[k], seed=seed)
    verdict = "above it" if t.low > 0 else "below it" if t.high < 0 else "not distinguishable"
    at_1 = (
        f", precision@1 {ours.metrics[1]['precision']:.4f} against "
        f"{theirs.metrics[1]['precision']:.4f}"
        if 1 in ours.metrics and 1 in theirs.metrics
        else ""
    )
    return (
        f"{text} On the test users: NDCG@{k} {ours.metrics[k]['ndcg']:.4f} against "
        f"{theirs.metrics[k]['ndcg']:.4f} for {first.name} alone, precision@{k} "
        f"{ours.metrics[k]['precision']:.4f} against {theirs.metrics[k]['precision']:.4f}"
        f"{at_1} (difference interval of NDCG [{t.low:+.4f}, {t.high:+.4f}]): {verdict}."
    )
