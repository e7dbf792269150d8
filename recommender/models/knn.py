"""Item-kNN: items are similar when the same users like them (cosine, or BM25-weighted as implicit's
``BM25Recommender``); a history's score is the sum of its items' similarity rows.

The top K neighbours per item come from implicit's ``all_pairs_knn`` (C++, OpenMP): 3 to 4.5
times faster than our chunked scipy product (:func:`~.neighbours.product_top_k`, which RP3beta's
asymmetric walk needs) on one thread, from 6k to 200k items (``bench/families.py --part
knn-speed``), and it uses every core. Otherwise numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from ..errors import TrainingAborted
from .base import Cost, FittedModel, ModelFamily, TrainingData
from .neighbours import likes_to_learn, product_pairs, top_k_per_row
from .params import choice, complete, flag, integer, number
from .similarity import SimilarityModel

__all__ = [
    "KnnFamily",
    "KnnModel",
    "bm25_weights",
    "cosine_neighbours",
    "dot_neighbours",
    "knn_cost",
]

WEIGHTINGS = ("cosine", "bm25")


def dot_neighbours(
    vectors: sp.csr_matrix, k: int, *, should_stop: Callable[[], bool] = lambda: False
) -> sp.csr_matrix:
    """Each item's ``k`` largest positive dot products with other items (the columns of users x
    items ``vectors``), as an items x items float32 CSR matrix."""
    from implicit._nearest_neighbours import all_pairs_knn  # compiled; imported where needed

    if should_stop():
        raise TrainingAborted("stopped before computing item neighbours")
    # k + 1: implicit counts an item among its own neighbours; all cores, as ALS's fit.
    found = all_pairs_knn(
        sp.csr_matrix(vectors, dtype=np.float64), k + 1, num_threads=0, show_progress=False
    ).tocoo()
    other = found.row != found.col
    matrix = sp.csr_matrix(
        (found.data[other].astype(np.float32), (found.row[other], found.col[other])),
        shape=(vectors.shape[1], vectors.shape[1]),
    )
    return top_k_per_row(matrix, k)


def cosine_neighbours(
    liked: sp.csr_matrix, k: int, *, should_stop: Callable[[], bool] = lambda: False
) -> sp.csr_matrix:
    """Each item's ``k`` most cosine-similar items (users x items ``liked`` as the vectors)."""
    norms = np.sqrt(np.asarray(liked.multiply(liked).sum(axis=0)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    unit = sp.csr_matrix(liked.multiply(inverse[None, :]), dtype=np.float32)
    return dot_neighbours(unit, k, should_stop=should_stop)


def bm25_weights(liked: sp.csr_matrix, k1: float, b: float) -> sp.csr_matrix:
    """implicit's ``bm25_weight`` of the items x users matrix, returned as users x items: an item
    is a document, a user a term (rare users count more; long items are damped by ``b``)."""
    coo = liked.T.tocoo()
    n_items = float(liked.shape[1])
    users_items = np.bincount(coo.col, minlength=liked.shape[0])
    # A user with nearly every item would get a negative idf: clipped, similarities stay >= 0.
    idf = np.maximum(np.log(n_items) - np.log1p(users_items), 0.0)
    lengths = np.bincount(coo.row, weights=coo.data, minlength=liked.shape[1])
    mean = lengths.mean() if lengths.size and lengths.mean() > 0 else 1.0
    length_norm = (1.0 - b) + b * lengths / mean
    data = coo.data * (k1 + 1.0) / (k1 * length_norm[coo.row] + coo.data) * idf[coo.col]
    weighted = sp.csr_matrix((data.astype(np.float32), (coo.col, coo.row)), shape=liked.shape)
    weighted.eliminate_zeros()
    return weighted


def knn_cost(n_users: int, n_items: int, nnz: int, k: int) -> Cost:
    """A conservative cost of :func:`dot_neighbours` (implicit's all_pairs_knn) on a users x
    items matrix with ``nnz`` likes: its float64 copies, its top K+1 and ours; one thread's
    time (measured 1.1 to 10 times below this on 6k to 200k items, bench/families.py --part
    fit-scale)."""
    memory = 1.5 * (nnz * 48 + n_items * (k + 1) * 16 + n_items * k * 16 + n_items * 48)
    seconds = product_pairs(n_users, n_items, nnz) * 1.5e-8 + n_items * k * 1e-7 + 0.01
    return Cost(int(memory), float(seconds))


class KnnModel(SimilarityModel):
    family = "knn"


class KnnFamily(ModelFamily):
    """Item-kNN, cosine or BM25 (the ``knn_weighting`` setting)."""

    name = "knn"
    # Chosen across every data set (bench/families.py --part defaults, EVALUATION-families.md):
    # cosine with 20 neighbours, 85 % of a validation split's best (10: 86 %, but similar_items
    # could then name only 10); BM25 is 21 % worse than cosine on MovieLens, 4 % better on anime.
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "knn_weighting": "cosine",
        "knn_neighbours": 20,
        "knn_bm25_k1": 5.0,
        "knn_bm25_b": 0.25,
        "knn_binary": True,
    }

    def defaults(self) -> dict[str, Any]:
        return dict(self.DEFAULTS)

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out = complete(self.name, params, self.DEFAULTS)
        choice(out, "knn_weighting", WEIGHTINGS)
        integer(out, "knn_neighbours", 1, 10_000)
        number(out, "knn_bm25_k1", 0.0, 1000.0)
        number(out, "knn_bm25_b", 0.0, 1.0)
        flag(out, "knn_binary")
        return out

    def suggest(self, trial: Any) -> dict[str, Any]:
        params: dict[str, Any] = {
            "knn_weighting": trial.suggest_categorical("knn_weighting", list(WEIGHTINGS)),
            "knn_neighbours": trial.suggest_int("knn_neighbours", 10, 1000, log=True),
        }
        if params["knn_weighting"] == "bm25":
            params["knn_bm25_k1"] = trial.suggest_float("knn_bm25_k1", 0.1, 100.0, log=True)
            params["knn_bm25_b"] = trial.suggest_float("knn_bm25_b", 0.0, 1.0)
        return params

    def cost(self, n_users: int, n_items: int, nnz: int, params: Mapping[str, Any]) -> Cost:
        return knn_cost(n_users, n_items, nnz, int(self.validate(params)["knn_neighbours"]))

    def fit(
        self,
        data: TrainingData,
        params: Mapping[str, Any],
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> FittedModel:
        settings = self.validate(params)
        liked = likes_to_learn(data.user_items, binary=settings["knn_binary"], family="item-kNN")
        k = settings["knn_neighbours"]
        if settings["knn_weighting"] == "cosine":
            similarity = cosine_neighbours(liked, k, should_stop=should_stop)
        else:
            weighted = bm25_weights(liked, settings["knn_bm25_k1"], settings["knn_bm25_b"])
            similarity = dot_neighbours(weighted, k, should_stop=should_stop)
        return KnnModel(settings, data.shape[1], similarity)
