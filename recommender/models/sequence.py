"""Sequence-aware: the next item from the order of a user's newest likes.

Fit: *sequential rules* on each user's liked items in time order: item b follows item a within
``sequence_steps`` later likes, weighted 1 / gap (1 step: first-order transitions); each item's
successors normalised to sum to 1, the top ``sequence_successors`` kept. Plus, for what the rules
do not reach, cosine item-kNN (``sequence_similar`` neighbours, rows normalised to sum to 1).

Score, for a history whose recent likes are r_1 .. r_m (oldest first):

    score = Σ_t decay**(m - t) · Next[r_t]  +  fallback · Σ_j w_j · Similar[j] / Σ_j w_j⁺

so the newest like counts fully, the one before ``decay`` times, and so on; a fresh event (the
end of ``History.recent``) changes the answer at once. Only recent items the history still likes
take part in the rules; dislikes (w < 0) only lower scores; neutral events change nothing.

Pure: numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..errors import TrainingError
from .base import (
    MAX_RECENT,
    ArraySpec,
    Cost,
    FittedModel,
    History,
    ModelFamily,
    Sequences,
    TrainingData,
)
from .data import recent_sequences
from .knn import cosine_neighbours, knn_cost
from .neighbours import (
    check_csr,
    check_specs,
    csr_arrays,
    csr_from_arrays,
    csr_spec,
    flatten,
    likes,
    top_k_per_row,
)
from .params import complete, integer, number
from .similarity import ItemGraph, accumulate, contributions_of, largest

__all__ = ["SequenceFamily", "SequenceModel", "sequences_from_events", "successor_rules"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def sequences_from_events(
    n_users: int, users: IntArray, items: IntArray, order: npt.NDArray[Any]
) -> Sequences:
    """Each user's liked events (pass only likes) sorted by ``order`` (e.g. time; ties keep the
    given order), at most the MAX_RECENT newest."""
    zeros = np.zeros(users.size, np.int64)
    ties = np.arange(users.size, dtype=np.int64)
    keys = (zeros, ties, np.asarray(order))
    return recent_sequences(users, items, keys, np.ones(users.size, bool), n_users)


def _row_normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(matrix.sum(axis=1), np.float64).ravel()
    inverse = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.csr_matrix(matrix.multiply(inverse[:, None]), dtype=np.float32)


def successor_rules(sequences: Sequences, n_items: int, *, steps: int, k: int) -> sp.csr_matrix:
    """Next[a, b]: how strongly b follows a (see the module docstring), top ``k`` per item."""
    owner = np.repeat(np.arange(sequences.indptr.size - 1), np.diff(sequences.indptr))
    items = sequences.items.astype(np.int64)
    counts = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    for gap in range(1, steps + 1):  # one gap's pairs at a time: bounded memory
        same_user = owner[:-gap] == owner[gap:] if items.size > gap else np.zeros(0, bool)
        a, b = items[:-gap][same_user], items[gap:][same_user]
        moved = a != b  # coming back to the same item says nothing about what comes next
        weights = np.full(int(moved.sum()), 1.0 / gap)
        counts = counts + sp.csr_matrix(
            (weights, (a[moved], b[moved])), shape=(n_items, n_items), dtype=np.float64
        )
    return top_k_per_row(_row_normalised(counts), k)


class SequenceModel(FittedModel):
    """Successor rules for the order of recent likes, cosine co-occurrence for the rest."""

    family = "sequence"
    ARRAYS: ClassVar[Mapping[str, ArraySpec]] = {**csr_spec("next"), **csr_spec("similar")}

    def __init__(
        self, params: Mapping[str, Any], n_items: int, next_: sp.csr_matrix, similar: sp.csr_matrix
    ) -> None:
        super().__init__(params, n_items)
        self.next = ItemGraph(next_)
        self.similar = ItemGraph(similar)
        self.decay = float(self.params.get("sequence_decay", 0.5))
        self.fallback = float(self.params.get("sequence_fallback", 10.0))
        self._decays = self.decay ** np.arange(MAX_RECENT, dtype=np.float64)  # newest first

    def _recent(self, history: History) -> tuple[IntArray, npt.NDArray[np.float64]]:
        """The recent likes the history still likes, with their decayed weights (1 newest)."""
        recent = history.recent
        if recent.size <= self._decays.size:
            decayed = self._decays[recent.size - 1 :: -1] if recent.size else self._decays[:0]
        else:
            decayed = self.decay ** np.arange(recent.size - 1, -1, -1, dtype=np.float64)
        no_longer = history.cols[history.weights <= 0]  # liked, then disliked or neutral
        if no_longer.size:
            decayed = np.where(np.isin(recent, no_longer), 0.0, decayed)
        keep = decayed > 0
        return recent[keep], decayed[keep]

    def _fallback_weights(self, history: History) -> npt.NDArray[np.float64]:
        """The history's +1/-1 likes and dislikes, divided by its number of likes."""
        signs = np.sign(history.weights.astype(np.float64))
        liked = float((signs > 0).sum())
        return signs / liked if liked else signs

    def score(self, histories: Sequence[History]) -> FloatArray:
        if not histories:
            return np.zeros((0, self.n_items), np.float32)
        rows, cols, weights = [], [], []
        for index, history in enumerate(histories):  # a few per batch: measured cheap
            recent, decayed = self._recent(history)
            rows.append(np.full(recent.size, index, np.int64))
            cols.append(recent)
            weights.append(decayed.astype(np.float32))
        terms = [
            self.next.terms(np.concatenate(rows), np.concatenate(cols), np.concatenate(weights))
        ]
        if self.fallback > 0:
            # The history's likes count 1 each and sum to 1: the rules' newest item does too.
            rows_, cols_, signs = flatten(histories, binary=True)
            liked = np.bincount(rows_[signs > 0], minlength=len(histories)).astype(np.float32)
            share = self.fallback / np.maximum(liked, 1.0)
            weighted = (signs * share[rows_]).astype(np.float32)
            terms.append(self.similar.terms(rows_, cols_, weighted))
        return accumulate(len(histories), self.n_items, terms)

    def similar_items(self, col: int, n: int) -> tuple[IntArray, FloatArray]:
        """The likeliest next items after ``col``, then (weighted by the fallback) co-occurring
        ones."""
        after, after_values = self.next.neighbours(col, self.n_items)
        near, near_values = self.similar.neighbours(col, self.n_items)
        cols, inverse = np.unique(np.concatenate([after, near]), return_inverse=True)
        values = np.bincount(
            inverse,
            np.concatenate([after_values, self.fallback * near_values]).astype(np.float64),
            minlength=cols.size,
        )
        order = np.lexsort((cols, -values))[: max(n, 0)]
        return cols[order], values[order].astype(np.float32)

    def explain(self, history: History, col: int, n: int) -> tuple[float, IntArray, FloatArray]:
        recent, decayed = self._recent(history)
        by_rules = contributions_of(self.next, recent, decayed, col)
        weights = self._fallback_weights(history) * self.fallback
        by_similarity = contributions_of(self.similar, history.cols, weights, col)
        cols, inverse = np.unique(np.concatenate([history.cols, recent]), return_inverse=True)
        total = np.asarray(
            np.bincount(inverse, np.concatenate([by_similarity, by_rules]), minlength=cols.size),
            np.float64,
        )
        top_cols, top = largest(cols, total, n)
        return float(total.sum()), top_cols, top

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            **csr_arrays("next", self.next.matrix),
            **csr_arrays("similar", self.similar.matrix),
        }

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any], n_items: int
    ) -> SequenceModel:
        return cls(
            params,
            n_items,
            csr_from_arrays("next", arrays, n_items),
            csr_from_arrays("similar", arrays, n_items),
        )

    @classmethod
    def check_arrays(
        cls, arrays: Mapping[str, np.ndarray], n_users: int, n_items: int
    ) -> list[str]:
        problems = check_specs(arrays, cls.ARRAYS)
        if problems:
            return problems
        # Both are row-normalised: every entry in [0, 1] (a little slack for float32 sums).
        return [
            *check_csr(arrays, "next", n_items, low=0.0, high=1.0 + 1e-4),
            *check_csr(arrays, "similar", n_items, low=0.0, high=1.0 + 1e-4),
        ]


class SequenceFamily(ModelFamily):
    """Successor rules with co-occurrence fallback (see the module docstring)."""

    name = "sequence"
    # Chosen across every data set (bench/families.py --part defaults, EVALUATION-families.md):
    # the best worst case, 81 % of a validation split's best. The random holdout wants more
    # co-occurrence (fallback 30-100), leave-last-out more order (fallback 1-3): 10 is between.
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "sequence_steps": 8,
        "sequence_decay": 0.5,
        "sequence_fallback": 10.0,
        "sequence_successors": 100,
        "sequence_similar": 20,
    }

    def defaults(self) -> dict[str, Any]:
        return dict(self.DEFAULTS)

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out = complete(self.name, params, self.DEFAULTS)
        integer(out, "sequence_steps", 1, MAX_RECENT)
        number(out, "sequence_decay", 0.0, 1.0)
        number(out, "sequence_fallback", 0.0, 1000.0)
        integer(out, "sequence_successors", 1, 10_000)
        integer(out, "sequence_similar", 1, 10_000)
        return out

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {
            "sequence_steps": trial.suggest_int("sequence_steps", 1, 20, log=True),
            "sequence_decay": trial.suggest_float("sequence_decay", 0.0, 0.95),
            "sequence_fallback": trial.suggest_float("sequence_fallback", 0.1, 30.0, log=True),
            "sequence_successors": trial.suggest_int("sequence_successors", 10, 500, log=True),
            "sequence_similar": trial.suggest_int("sequence_similar", 5, 200, log=True),
        }

    def cost(self, n_users: int, n_items: int, nnz: int, params: Mapping[str, Any]) -> Cost:
        """The fallback's item-kNN, then the rules: at most min(likes, users x MAX_RECENT) x
        steps successor pairs, each summed into a sparse matrix and ranked (measured 1.7 times
        below this at 200k items, bench/families.py --part fit-scale)."""
        settings = self.validate(params)
        similar = knn_cost(n_users, n_items, nnz, settings["sequence_similar"])
        pairs = float(min(nnz, n_users * MAX_RECENT)) * settings["sequence_steps"]
        kept = n_items * settings["sequence_successors"]
        rules = Cost(int(pairs * 80 + kept * 24), pairs * 1e-6)
        return Cost(max(similar.bytes, rules.bytes), similar.seconds + rules.seconds + 0.01)

    def fit(
        self,
        data: TrainingData,
        params: Mapping[str, Any],
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> FittedModel:
        settings = self.validate(params)
        liked = likes(data.user_items, binary=True)
        if liked.nnz == 0 and data.sequences.items.size == 0:
            raise TrainingError("the window has no likes: the sequence family has nothing to learn")
        next_ = successor_rules(
            data.sequences,
            data.shape[1],
            steps=settings["sequence_steps"],
            k=settings["sequence_successors"],
        )
        similar = cosine_neighbours(liked, settings["sequence_similar"], should_stop=should_stop)
        return SequenceModel(settings, data.shape[1], next_, _row_normalised(similar))
