"""The builder's quality gate: judge a model on the newest events of the window.

Both the candidate and the serving model are asked, for each held-out event, for that user's
top-k given the user's other window events (folded in against each model's item factors, the
ALS least-squares step), and a hit is counted when the held-out item is in it. The candidate was
trained without those events, so neither model has seen them. Pure numpy/scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.sparse as sp

__all__ = ["FactorModel", "GateResult", "holdout_hit_rate", "judge"]


@dataclass(frozen=True, slots=True)
class FactorModel:
    """What the gate needs of a model: its items and their factors, and ALS's alpha and λ."""

    item_ids: list[str]
    item_factors: npt.NDArray[np.float32]
    alpha: float
    regularization: float


@dataclass(frozen=True, slots=True)
class GateResult:
    candidate: float
    serving: float
    holdout_events: int
    users: int
    max_drop: float

    @property
    def passed(self) -> bool:
        return self.candidate >= self.serving * (1.0 - self.max_drop)

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "candidate_hit_rate": round(self.candidate, 5),
            "serving_hit_rate": round(self.serving, 5),
            "holdout_events": self.holdout_events,
            "users": self.users,
            "max_drop": self.max_drop,
            "passed": self.passed,
        }


def holdout_hit_rate(
    model: FactorModel,
    item_ids: list[str],
    train: sp.csr_matrix,
    holdout_users: npt.NDArray[np.int64],
    holdout_items: npt.NDArray[np.int64],
    *,
    k: int = 10,
    max_users: int = 2000,
    seed: int = 0,
) -> tuple[float, int]:
    """Hit rate@k of ``model`` on the held-out (user row, item column) events of a window whose
    columns are ``item_ids`` and whose other events are ``train``; returns (rate, users judged).

    Users with no other event in the window are skipped (nothing to fold in); items the model
    does not know can never be hit.
    """
    index = {item: row for row, item in enumerate(model.item_ids)}
    to_model = np.array([index.get(item, -1) for item in item_ids], dtype=np.int64)
    y = np.asarray(model.item_factors, dtype=np.float64)
    gram = y.T @ y + model.regularization * np.eye(y.shape[1])
    users = np.unique(holdout_users)
    if users.size > max_users:
        users = np.random.default_rng(seed).choice(users, max_users, replace=False)
    wanted: dict[int, set[int]] = {}
    for u, i in zip(holdout_users.tolist(), holdout_items.tolist(), strict=True):
        wanted.setdefault(u, set()).add(int(to_model[i]))
    hits = judged = 0
    for u in users.tolist():
        lo, hi = train.indptr[u], train.indptr[u + 1]
        cols = to_model[train.indices[lo:hi]]
        known = cols >= 0
        if not known.any():
            continue
        rows, confidence = cols[known], model.alpha * train.data[lo:hi][known].astype(np.float64)
        yu = y[rows]
        a = gram + (yu.T * (confidence - 1.0)) @ yu
        x = scipy.linalg.solve(a, yu.T @ confidence, assume_a="pos")
        scores = y @ x
        scores[rows] = -np.inf
        top = np.argpartition(-scores, min(k, scores.size - 1))[:k]
        judged += 1
        hits += bool(wanted[u] & set(top.tolist()))
    return (hits / judged if judged else 0.0), judged


def judge(
    candidate: FactorModel,
    serving: FactorModel,
    item_ids: list[str],
    train: sp.csr_matrix,
    holdout_users: npt.NDArray[np.int64],
    holdout_items: npt.NDArray[np.int64],
    *,
    max_drop: float,
    k: int = 10,
) -> GateResult:
    """Compare ``candidate`` with ``serving`` on the same held-out events."""
    new, users = holdout_hit_rate(candidate, item_ids, train, holdout_users, holdout_items, k=k)
    old, _ = holdout_hit_rate(serving, item_ids, train, holdout_users, holdout_items, k=k)
    return GateResult(new, old, int(holdout_users.size), users, max_drop)
