"""Training a ranker on a time split of the window, and judging it against the first stage alone.

Candidates come from sources fitted on the events before a cut; a candidate's label is whether its
user liked it after the cut, so no label is an event the sources learnt. Users are split in two:
the ranker learns on one part and is compared with the first stage (its primary source's order)
on the other, per user (NDCG@10), with a paired bootstrap interval. Pure but for LightGBM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..features import FeatureSchema
from ..user_metrics import PairedComparison, paired_bootstrap, per_user_metrics
from .candidates import CandidateTable
from .model import LearnedRanker

__all__ = [
    "Objective",
    "RankerFit",
    "fit_ranker",
    "labels_of",
    "linear_blend",
    "ndcg_of",
    "top_by_score",
]

Objective = Literal["lambdarank", "binary"]
K = 10

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def labels_of(table: CandidateTable, truth: sp.csr_matrix) -> FloatArray:
    """1 for a candidate its user liked after the cut (``truth``: batch users x items), else 0."""
    liked = np.asarray(truth[table.user, table.col]).ravel() > 0
    return liked.astype(np.float32)


def top_by_score(table: CandidateTable, scores: npt.ArrayLike, users: int, k: int = K) -> IntArray:
    """Each user's ``k`` best candidates by ``scores`` (users x k columns, -1 where fewer)."""
    scores = np.asarray(scores, np.float64)
    order = np.lexsort((-scores, table.user))
    user = table.user[order]
    start = np.searchsorted(user, np.arange(users))
    position = np.arange(order.size) - start[user]
    keep = position < k
    top = np.full((users, k), -1, np.int64)
    top[user[keep], position[keep]] = table.col[order][keep]
    return top


def ndcg_of(
    table: CandidateTable, scores: npt.ArrayLike, truth: sp.csr_matrix
) -> npt.NDArray[np.float64]:
    """Per user NDCG@10 of ordering the candidates by ``scores`` (NaN: a user without truth)."""
    top = top_by_score(table, scores, truth.shape[0])
    ndcg, _ = per_user_metrics(top, truth, K)
    return np.asarray(ndcg, np.float64)


@dataclass(frozen=True)
class RankerFit:
    ranker: LearnedRanker
    #: Ranker against the first stage on the held-out users: difference of NDCG@10 and interval.
    comparison: PairedComparison
    ranker_ndcg: float
    first_stage_ndcg: float
    #: The baseline a tree ensemble must beat: a logistic regression on the same features.
    blend_ndcg: float
    #: Ranker against that linear blend, on the same users.
    against_blend: PairedComparison
    #: The share of held-out users' truth items among their candidates (the ranker's ceiling).
    recall_ceiling: float
    rows: int
    seconds: float


def _select(table: CandidateTable, users: IntArray) -> tuple[CandidateTable, IntArray]:
    """The rows of ``users`` (positions in the batch), renumbered 0..len(users)-1."""
    position = np.full(int(table.user.max(initial=-1)) + 1, -1, np.int64)
    position[users] = np.arange(users.size)
    rows = np.flatnonzero(np.isin(table.user, users))
    chosen = CandidateTable(
        position[table.user[rows]], table.col[rows], table.features[rows], table.names
    )
    return chosen, rows


def linear_blend(
    learn: FloatArray, labels: FloatArray, judge: FloatArray, *, l2: float = 1.0
) -> npt.NDArray[np.float64]:
    """Scores of ``judge`` rows by a logistic regression fitted on ``learn`` (standardised
    columns, L2 penalty ``l2`` over the rows' mean log-loss): the linear blend of the same
    features that the tree ensemble is held against."""
    from scipy.optimize import minimize

    mean, std = learn.mean(axis=0), learn.std(axis=0)
    std[std == 0] = 1.0
    x = np.column_stack([(learn - mean) / std, np.ones(len(learn))]).astype(np.float64)
    y = labels.astype(np.float64)

    def loss(w: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        z = x @ w
        p = 1.0 / (1.0 + np.exp(-z))
        value = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * (w[:-1] @ w[:-1]) / len(y)
        grad = x.T @ (p - y) / len(y)
        grad[:-1] += l2 * w[:-1] / len(y)
        return float(value), grad

    weights = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
    return np.asarray(((judge - mean) / std) @ weights[:-1] + weights[-1], np.float64)


def fit_ranker(
    table: CandidateTable,
    truth: sp.csr_matrix,
    *,
    first_stage: str,
    objective: Objective = "lambdarank",
    holdout: float = 0.3,
    rounds: int = 200,
    leaves: int = 31,
    learning_rate: float = 0.05,
    seed: int = 0,
) -> RankerFit:
    """Learn on ``1 - holdout`` of the users with truth, compare on the rest. ``first_stage``:
    the source whose rank orders the answer without a ranker (its ``.rank`` feature)."""
    import lightgbm

    started = time.perf_counter()
    has_truth = np.flatnonzero(np.diff(truth.indptr) > 0)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(has_truth)
    cut = round(shuffled.size * (1 - holdout))
    learn_users, judge_users = np.sort(shuffled[:cut]), np.sort(shuffled[cut:])
    learn, _ = _select(table, learn_users)
    judge, _ = _select(table, judge_users)
    labels = labels_of(learn, truth[learn_users])
    schema = FeatureSchema.with_medians(table.names, learn.features)
    features = schema.fill(learn.features.copy())
    params = {
        "objective": objective,
        "learning_rate": learning_rate,
        "num_leaves": leaves,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambdarank_truncation_level": 20,
        "num_threads": 1,
        "seed": seed,
        "deterministic": True,
        "verbose": -1,
    }
    if objective == "binary":
        del params["lambdarank_truncation_level"]
    dataset = lightgbm.Dataset(
        features,
        labels,
        group=np.bincount(learn.user, minlength=learn_users.size)
        if objective == "lambdarank"
        else None,
        feature_name=[n.replace(".", "_") for n in table.names],
        free_raw_data=True,
    )
    booster = lightgbm.train(params, dataset, num_boost_round=rounds)
    ranker = LearnedRanker(booster.model_to_string(), schema, objective)
    judged_truth = truth[judge_users]
    ranked = ndcg_of(judge, ranker.score(judge.features), judged_truth)
    rank_column = judge.features[:, table.names.index(f"{first_stage}.rank")]
    first = ndcg_of(judge, -rank_column, judged_truth)
    judged_features = schema.fill(judge.features.copy())
    blended = ndcg_of(judge, linear_blend(features, labels, judged_features), judged_truth)
    found = labels_of(judge, judged_truth).sum()
    return RankerFit(
        ranker=ranker,
        comparison=paired_bootstrap(ranked, first, seed=seed),
        ranker_ndcg=float(np.nanmean(ranked)),
        first_stage_ndcg=float(np.nanmean(first)),
        blend_ndcg=float(np.nanmean(blended)),
        against_blend=paired_bootstrap(ranked, blended, seed=seed),
        recall_ceiling=float(found / max(judged_truth.nnz, 1)),
        rows=int(learn.user.size),
        seconds=time.perf_counter() - started,
    )
