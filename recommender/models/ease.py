"""EASE (Steck 2019): a dense items x items weight matrix B, the closed-form ridge regression of
every item on all the others, with a zero diagonal.

    P = (XᵀX + λI)⁻¹,   B = I - P · diag(1 / diag(P))   (so B[i, j] = -P[i, j] / P[j, j])

Its cost is that of B: n² floats in memory (20k items: 1.6 GB) and an n³ inversion (about n³ / 80e9
seconds on one core here, in float32). ``cost()`` says so before a fit starts, so a builder can
leave EASE out of a window past its budget rather than allocate past it.

Computed in float32, in place: the Gram matrix is built a block of columns at a time into one n x n
array, which LAPACK's Cholesky factorisation and inversion (``spotrf``/``spotri``) then overwrite;
peak memory is one n x n float32 array plus the likes. float32 loses nothing measurable against
float64 at the λ the tuner searches (``bench/families.py --part ease-precision``).

Pure: numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.linalg.lapack as lapack
import scipy.sparse as sp

from ..errors import TrainingAborted, TrainingError
from .base import ArraySpec, Cost, FittedModel, History, ModelFamily, TrainingData
from .neighbours import check_specs, flatten, likes_to_learn, product_pairs
from .params import complete, flag, number
from .similarity import MAX_SIMILARITY, largest

__all__ = ["EaseFamily", "EaseModel", "ease_weights"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: Calibration of ``cost()``: 1.13e-11 measured on one core at 20k items (bench/families.py
#: --part ease-scale, one run), doubled for a shared machine.
SECONDS_PER_CUBE = 2.5e-11
#: Columns of the Gram matrix computed per sparse product (bounded temporary memory).
GRAM_ENTRIES = 1 << 23


def _gram(liked: sp.csr_matrix, out: FloatArray, should_stop: Callable[[], bool]) -> None:
    """``out[:] = likedᵀ liked``, a block of columns at a time (no n x n temporary)."""
    n = liked.shape[1]
    by_item = liked.T.tocsr()
    columns = liked.tocsc()
    step = max(1, GRAM_ENTRIES // max(n, 1))
    for lo in range(0, n, step):
        if should_stop():
            raise TrainingAborted("stopped while building EASE's Gram matrix")
        hi = min(n, lo + step)
        out[:, lo:hi] = (by_item @ columns[:, lo:hi]).toarray()


def _symmetrise_lower(a: FloatArray, block: int = 2048) -> None:
    """Copy the lower triangle of ``a`` onto its upper one, a block of rows at a time."""
    n = a.shape[0]
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        a[lo:hi, hi:] = a[hi:, lo:hi].T
        square = a[lo:hi, lo:hi]
        upper = np.triu_indices(hi - lo, 1)
        square[upper] = square.T[upper]


def ease_weights(
    liked: sp.csr_matrix, lam: float, *, should_stop: Callable[[], bool] = lambda: False
) -> FloatArray:
    """B for a users x items matrix of likes and L2 weight ``lam`` (n x n float32)."""
    n = liked.shape[1]
    gram = np.empty((n, n), np.float32)
    _gram(liked, gram, should_stop)
    gram[np.diag_indices(n)] += np.float32(lam)
    # LAPACK reads Fortran order: the transpose is the same memory, so it works in place; its
    # "upper" triangle is our lower one.
    factor, info = lapack.spotrf(gram.T, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise TrainingError(f"EASE: XᵀX + λI is not positive definite (LAPACK info {info})")
    if should_stop():
        raise TrainingAborted("stopped after EASE's factorisation")
    inverse, info = lapack.spotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise TrainingError(f"EASE: the inversion failed (LAPACK info {info})")
    weights = np.asarray(inverse.T)
    if not np.shares_memory(weights, gram):  # LAPACK had to copy after all: keep one array
        gram[:] = weights
        del weights, inverse, factor
    _symmetrise_lower(gram)
    diagonal = gram.diagonal().copy()
    gram *= (-1.0 / diagonal)[None, :]
    np.fill_diagonal(gram, 0.0)
    return gram


def _bounded(weights: FloatArray, block: int = 1024) -> bool:
    """Every weight finite and within ±MAX_SIMILARITY (a block of rows at a time: no n x n
    temporary)."""
    return all(
        bool(np.all(np.abs(weights[lo : lo + block]) <= MAX_SIMILARITY))  # NaN fails too
        for lo in range(0, weights.shape[0], block)
    )


class EaseModel(FittedModel):
    """Scores = history weights @ B (a dislike adds its weight times B's row clipped at 0)."""

    family = "ease"
    ARRAYS: ClassVar[Mapping[str, ArraySpec]] = {"weights": ArraySpec("float32", 2)}

    def __init__(self, params: Mapping[str, Any], n_items: int, weights: FloatArray) -> None:
        super().__init__(params, n_items)
        self.weights = weights
        self.binary = bool(self.params.get("ease_binary", True))

    def score(self, histories: Sequence[History]) -> FloatArray:
        """A sparse (histories x items) times dense B product: it reads only the rows the batch
        touches, without copying them (at 20k items, 50 items: 131 µs a history against 244 µs
        gathering the rows for a BLAS product)."""
        rows, cols, weights = flatten(histories, binary=self.binary)
        n = len(histories)
        mixing = sp.csr_matrix((weights, (rows, cols)), shape=(n, self.n_items))
        out = np.ascontiguousarray(mixing @ self.weights, dtype=np.float32)
        disliked = weights < 0
        if bool(disliked.any()):
            # A dislike adds w * max(B_j, 0), not w * B_j: add w * max(-B_j, 0).
            clipped = np.maximum(-self.weights[cols[disliked]], 0.0)
            np.add.at(out, rows[disliked], weights[disliked][:, None] * clipped)
        return out

    def similar_items(self, col: int, n: int) -> tuple[IntArray, FloatArray]:
        row = self.weights[col]
        n = max(0, min(n, self.n_items - 1))
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = np.argpartition(-row, n)[: n + 1]
        top = top[top != col]
        top = top[np.lexsort((top, -row[top]))][:n]
        return top.astype(np.int64), row[top].astype(np.float32)

    def explain(self, history: History, col: int, n: int) -> tuple[float, IntArray, FloatArray]:
        weights = history.weights.astype(np.float64)
        if self.binary:
            weights = np.sign(weights)
        entries = self.weights[history.cols, col].astype(np.float64)
        contributions = weights * np.where(weights < 0, np.maximum(entries, 0.0), entries)
        cols, top = largest(history.cols, contributions, n)
        return float(contributions.sum()), cols, top

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any], n_items: int
    ) -> EaseModel:
        return cls(params, n_items, arrays["weights"])

    @classmethod
    def check_arrays(
        cls, arrays: Mapping[str, np.ndarray], n_users: int, n_items: int
    ) -> list[str]:
        problems = check_specs(arrays, cls.ARRAYS)
        if problems:
            return problems
        weights = arrays["weights"]
        if weights.shape != (n_items, n_items):
            return [f"weights is {weights.shape}, expected ({n_items}, {n_items})"]
        problems = []
        if not _bounded(weights):
            problems.append(f"weights are not all finite numbers within ±{MAX_SIMILARITY:g}")
        if n_items and bool(np.any(weights.diagonal() != 0)):
            problems.append("weights has a non-zero diagonal (an item would explain itself)")
        return problems


class EaseFamily(ModelFamily):
    """EASE: ``ease_lambda`` (the L2 weight), ``ease_binary`` (learn from likes as 1)."""

    name = "ease"
    # Chosen across every data set (bench/families.py --part defaults, EVALUATION-families.md):
    # the best worst case, 89 % of a validation split's best λ (λ 100: 82 %).
    DEFAULTS: ClassVar[dict[str, Any]] = {"ease_lambda": 50.0, "ease_binary": True}

    def defaults(self) -> dict[str, Any]:
        return dict(self.DEFAULTS)

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out = complete(self.name, params, self.DEFAULTS)
        # Below 1 the float32 factorisation of a large catalogue's Gram matrix loses precision.
        number(out, "ease_lambda", 1.0, 1e6)
        flag(out, "ease_binary")
        return out

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {"ease_lambda": trial.suggest_float("ease_lambda", 5.0, 5000.0, log=True)}

    def cost(self, n_users: int, n_items: int, nnz: int, params: Mapping[str, Any]) -> Cost:
        """One n x n float32 array plus the likes (three copies), the Gram blocks and the
        gathered rows of a score; time n³ (factorise and invert) plus the Gram products."""
        n = float(n_items)
        memory = 4 * n * n + 3 * nnz * 16 + 2 * GRAM_ENTRIES * 12 + 8 * (n_users + n_items)
        gram_pairs = product_pairs(n_users, n_items, nnz)
        seconds = SECONDS_PER_CUBE * n**3 + 2e-8 * gram_pairs + 2e-8 * n * n + 0.01
        return Cost(int(memory), float(seconds))

    def fit(
        self,
        data: TrainingData,
        params: Mapping[str, Any],
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> FittedModel:
        settings = self.validate(params)
        liked = likes_to_learn(data.user_items, binary=settings["ease_binary"], family="EASE")
        weights = ease_weights(liked, settings["ease_lambda"], should_stop=should_stop)
        if not _bounded(weights):
            raise TrainingError(f"EASE produced weights beyond ±{MAX_SIMILARITY:g} or not finite")
        return EaseModel(settings, data.shape[1], weights)
