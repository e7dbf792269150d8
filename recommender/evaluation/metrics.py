"""Top-k ranking metrics, per user and averaged. Pure numpy.

Definitions (``recs`` is a user's ranked list, ``truth`` the set of their held-out items):

- precision@k = |top-k ∩ truth| / k
- recall@k    = |top-k ∩ truth| / |truth|
- NDCG@k      = DCG@k / IDCG@k, with DCG@k = Σ_{i≤k, recs_i ∈ truth} 1 / log2(i + 1) (binary gain)
  and IDCG@k the DCG of a perfect list (min(k, |truth|) hits first)
- AP@k        = Σ_{i≤k, recs_i ∈ truth} precision@i / min(k, |truth|); MAP@k is its mean
- hit rate@k  = 1 if top-k ∩ truth ≠ ∅ else 0
- coverage@k  = distinct items recommended in anyone's top-k / catalogue size

Users with an empty ``truth`` are not scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["METRICS", "UserScores", "evaluate_lists", "user_scores"]

METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")


@dataclass(frozen=True, slots=True)
class UserScores:
    precision: float
    recall: float
    ndcg: float
    map: float
    hit_rate: float


def user_scores(recs: Sequence[int], truth: set[int], k: int) -> UserScores:
    """All metrics at ``k`` for one user (``truth`` must not be empty)."""
    if not truth:
        raise ValueError("truth is empty: the user has nothing to find")
    top = list(recs[:k])
    hits = np.array([item in truth for item in top], dtype=bool)
    n_hits = int(hits.sum())
    discounts = 1.0 / np.log2(np.arange(2, len(top) + 2))
    dcg = float(discounts[hits].sum())
    ideal = float((1.0 / np.log2(np.arange(2, min(k, len(truth)) + 2))).sum())
    precision_at_i = np.cumsum(hits) / np.arange(1, len(top) + 1) if top else np.zeros(0)
    ap = float(precision_at_i[hits].sum()) / min(k, len(truth))
    return UserScores(
        precision=n_hits / k,
        recall=n_hits / len(truth),
        ndcg=dcg / ideal,
        map=ap,
        hit_rate=float(n_hits > 0),
    )


def evaluate_lists(
    recommendations: Mapping[int, Sequence[int]],
    truth: Mapping[int, set[int]],
    ks: Sequence[int],
    n_items: int,
) -> dict[int, dict[str, float]]:
    """Mean metrics at every k over the users with held-out items, plus catalogue coverage."""
    users = [u for u, items in truth.items() if items]
    out: dict[int, dict[str, float]] = {}
    for k in ks:
        rows = [user_scores(recommendations.get(u, ()), truth[u], k) for u in users]
        result = {
            m: float(np.mean([getattr(r, m) for r in rows])) if rows else 0.0 for m in METRICS
        }
        shown = {i for u in users for i in list(recommendations.get(u, ()))[:k]}
        result["coverage"] = len(shown) / n_items if n_items else 0.0
        result["users"] = float(len(users))
        out[k] = result
    return out
