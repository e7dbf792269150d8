"""Ranking quality per user, vectorised, and a paired bootstrap to compare two models fairly.

Shared by the builder's quality gate and its self-tuning. Pure numpy/scipy.

Definitions (``top`` is a user's ranked list, ``truth`` the set of their held-out items):

- NDCG@k   = Σ_{i≤k, top_i ∈ truth} 1/log2(i+1) / Σ_{i≤min(k,|truth|)} 1/log2(i+1)
- recall@k = |top@k ∩ truth| / min(k, |truth|)

(the same as :mod:`recommender.evaluation.metrics`, which scores one user at a time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["PairedComparison", "paired_bootstrap", "per_user_metrics", "top_k_rows"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def top_k_rows(scores: npt.NDArray[np.floating], k: int) -> IntArray:
    """Column indices of each row's ``k`` highest scores, best first (-inf scores come last)."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), np.int64)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1).astype(np.int64)


def per_user_metrics(top: IntArray, truth: sp.csr_matrix, k: int) -> tuple[FloatArray, FloatArray]:
    """NDCG@k and recall@k of each row of ``top`` (column ids, -1 for none) against the same row
    of ``truth`` (users x items, nonzero = held out). Rows without truth score NaN."""
    top = top[:, :k]
    users = top.shape[0]
    rows = np.repeat(np.arange(users), top.shape[1])
    cols = top.ravel()
    valid = cols >= 0
    flat_hit = np.zeros(rows.size, dtype=bool)
    if valid.any():
        flat_hit[valid] = np.asarray(truth[rows[valid], cols[valid]]).ravel() != 0
    hit = flat_hit.reshape(users, -1)
    discounts = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    dcg = (hit * discounts).sum(axis=1)
    sizes = np.diff(truth.indptr)
    ideal_counts = np.minimum(sizes, k)
    ideal_table = np.r_[0.0, np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))]
    ideal = ideal_table[ideal_counts]
    with np.errstate(invalid="ignore", divide="ignore"):
        ndcg = np.where(sizes > 0, dcg / ideal, np.nan)
        recall = np.where(sizes > 0, hit.sum(axis=1) / ideal_counts, np.nan)
    return ndcg, recall


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """Mean of ``candidate - baseline`` over users, with a bootstrap interval."""

    users: int
    candidate: float
    baseline: float
    difference: float
    low: float
    high: float
    confidence: float

    @property
    def relative_change(self) -> float:
        """(candidate - baseline) / baseline; 0 when the baseline is 0."""
        return self.difference / self.baseline if self.baseline > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "candidate": round(self.candidate, 5),
            "baseline": round(self.baseline, 5),
            "difference": round(self.difference, 5),
            "interval": [round(self.low, 5), round(self.high, 5)],
            "confidence": self.confidence,
            "relative_change": round(self.relative_change, 4),
        }


def paired_bootstrap(
    candidate: FloatArray,
    baseline: FloatArray,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare per-user scores of two models on the same users: the mean difference and a
    percentile bootstrap interval (users resampled with replacement)."""
    a, b = np.asarray(candidate, np.float64), np.asarray(baseline, np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = a.size
    if n == 0:
        return PairedComparison(0, 0.0, 0.0, 0.0, 0.0, 0.0, confidence)
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for lo in range(0, resamples, 250):  # bounded memory: 250 x users indices at a time
        hi = min(resamples, lo + 250)
        means[lo:hi] = diff[rng.integers(0, n, (hi - lo, n))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return PairedComparison(
        n, float(a.mean()), float(b.mean()), float(diff.mean()), float(low), float(high), confidence
    )
