"""The builder's quality gate: does a new model rank held-out events worse than the serving one?

The held-out events are window events the serving model has never seen (by offset; see
:meth:`recommender.window.InteractionWindow.matrix`, which gives them in event-time order); the
candidate is fitted without them. Each model answers every held-out user *as the server would*:
the server folds a user's events newer than its snapshot in, so the earlier half of a user's
held-out events (rounded down) is that user's fresh history, and the later half is what the
model must find. A user with a liked item the model knows (in the window or fresh) gets a fold-in
vector (the ALS user step against the model's item factors), anyone else the model's most popular
items, and items the model does not know can never be recommended. So new users, who are most of
the held-out users on a stream where people arrive, act in a session and leave, count as
evidence; and a model that knows more users or items gets credit for them, instead of those
users being left out.

Per user, NDCG@10 and recall@10 count every held-out liked item (not "any hit"); the models are
compared on the same users with a paired bootstrap over users. The gate

- **abstains** below ``min_users`` users or ``min_events`` held-out events (too little evidence):
  the candidate is published and the abstention recorded;
- **refuses** only when the drop is both significant (the whole interval below zero) and larger
  than ``max_drop`` of the serving model's score;
- otherwise **accepts**.

Pure numpy/scipy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .models import FittedModel, History, LatentModel, Sequences
from .models.data import recent_sequences
from .user_metrics import PairedComparison, paired_bootstrap, per_user_metrics, top_k_rows

__all__ = ["Decision", "GateModel", "GateVerdict", "compare_models", "served_rankings"]

Decision = Literal["accept", "refuse", "abstain"]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class GateModel:
    """What the gate needs of a model: its items, the fitted model of any family, and the
    popularity it falls back to."""

    item_ids: list[str]
    fitted: FittedModel
    popularity: npt.NDArray[np.number]

    @property
    def family(self) -> str:
        return self.fitted.family


@dataclass(frozen=True, slots=True)
class GateVerdict:
    decision: Decision
    reason: str
    metric: str
    events: int
    comparison: PairedComparison | None = None
    recall: PairedComparison | None = None
    max_drop: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        return self.decision == "refuse"

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reason": self.reason,
            "metric": self.metric,
            "held_out_events": self.events,
            "max_drop": self.max_drop,
            "ndcg": None if self.comparison is None else self.comparison.to_dict(),
            "recall": None if self.recall is None else self.recall.to_dict(),
            **self.details,
        }


def served_rankings(
    model: GateModel,
    item_ids: list[str],
    train: sp.csr_matrix,
    users: IntArray,
    *,
    k: int = 10,
    sequences: Sequences | None = None,
) -> IntArray:
    """Each user's top-k as the server would answer it from ``model``, in the columns of
    ``item_ids`` (-1 for a recommended item outside them): computed from the user's rows of
    ``train`` (and their newest liked items in order, ``sequences``, in the same columns) when
    they like an item the model knows, else the model's most popular items; the user's
    ``train`` items are never recommended."""
    index = {item: row for row, item in enumerate(model.item_ids)}
    to_model = np.fromiter((index.get(i, -1) for i in item_ids), np.int64, len(item_ids))
    to_window = np.full(len(model.item_ids), -1, np.int64)
    known = to_model >= 0
    to_window[to_model[known]] = np.flatnonzero(known)
    popularity = np.asarray(model.popularity, dtype=np.float64)
    out = np.full((users.size, k), -1, np.int64)
    for lo in range(0, users.size, 256):
        chunk = users[lo : lo + 256]
        histories = []
        for u in chunk.tolist():
            cols = to_model[train.indices[train.indptr[u] : train.indptr[u + 1]]]
            weights = train.data[train.indptr[u] : train.indptr[u + 1]].astype(np.float32)
            mine = cols >= 0
            recent = np.zeros(0, np.int64)
            if sequences is not None:
                recent = to_model[sequences.of(u)]
                recent = recent[recent >= 0]
            histories.append(
                History(cols[mine], weights[mine], recent=recent, fresh=True, priority=cols[mine])
            )
        scores = _scores(model.fitted, histories, popularity)
        # Never recommend what the user already has (in model columns).
        seen = train[chunk]
        rows = np.repeat(np.arange(chunk.size), np.diff(seen.indptr))
        cols = to_model[seen.indices]
        mine = cols >= 0
        scores[rows[mine], cols[mine]] = -np.inf
        top = top_k_rows(scores, k)
        finite = np.isfinite(np.take_along_axis(scores, top, axis=1))
        out[lo : lo + chunk.size, : top.shape[1]] = np.where(finite, to_window[top], -1)
    return out


def _scores(
    fitted: FittedModel, histories: list[History], popularity: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Scores as the server answers: the model where it can, popularity where it cannot."""
    if isinstance(fitted, LatentModel):
        vectors, ok = fitted.vectors(histories)
        item_vectors = np.asarray(fitted.item_vectors, dtype=np.float64)
        scores = np.asarray(vectors, dtype=np.float64) @ item_vectors.T
    else:
        ok = np.array([bool((h.weights > 0).any()) or h.recent.size > 0 for h in histories])
        scores = np.zeros((len(histories), popularity.size))
        if ok.any():
            scored = fitted.score([h for h, good in zip(histories, ok, strict=True) if good])
            scores[ok] = scored
    return np.where(ok[:, None], scores, popularity[None, :])


def compare_models(
    candidate: GateModel,
    serving: GateModel,
    item_ids: list[str],
    train: sp.csr_matrix,
    holdout_users: IntArray,
    holdout_items: IntArray,
    holdout_weights: npt.NDArray[np.floating],
    *,
    max_drop: float,
    min_users: int = 50,
    min_events: int = 200,
    max_users: int = 2000,
    k: int = 10,
    seed: int = 0,
    train_sequences: Sequences | None = None,
) -> GateVerdict:
    """Judge ``candidate`` against ``serving`` on the held-out events (window rows and columns,
    in event-time order; ``train`` is the window without them, ``train_sequences`` each user's
    newest liked items there, for sequence-aware families). See the module documentation for
    the rule."""
    metric = f"NDCG@{k}"
    shape = train.shape
    fresh = _fresh_history(holdout_users)
    history = train + sp.csr_matrix(
        (holdout_weights[fresh], (holdout_users[fresh], holdout_items[fresh])), shape=shape
    )
    liked = (holdout_weights > 0) & ~fresh
    truth = sp.csr_matrix(
        (np.ones(int(liked.sum())), (holdout_users[liked], holdout_items[liked])), shape=shape
    )
    truth.sum_duplicates()
    truth.data[:] = 1.0
    truth = truth - truth.multiply(history != 0)  # an item the user already has is not "found"
    truth.eliminate_zeros()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    events = int(truth.nnz)
    if users.size < min_users or events < min_events:
        return GateVerdict(
            "abstain",
            f"only {users.size} users with {events} held-out events the serving model has not "
            f"seen; the gate needs at least {min_users} users and {min_events} events",
            metric,
            events,
            max_drop=max_drop,
        )
    if users.size > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    user_truth = truth[users]
    scores = {}
    sequences = None
    if train_sequences is not None:  # the fresh half of the holdout continues each sequence
        sequences = _continued(
            train_sequences, holdout_users, holdout_items, holdout_weights, fresh
        )
    for name, model in (("candidate", candidate), ("serving", serving)):
        ranked = served_rankings(model, item_ids, history, users, k=k, sequences=sequences)
        scores[name] = per_user_metrics(ranked, user_truth, k)
    ndcg = paired_bootstrap(scores["candidate"][0], scores["serving"][0], seed=seed)
    recall = paired_bootstrap(scores["candidate"][1], scores["serving"][1], seed=seed)
    drop = -ndcg.relative_change
    significant = ndcg.high < 0
    details = {
        "users_sampled": int(users.size),
        "users_with_truth": int(np.diff(truth.indptr).astype(bool).sum()),
        "fresh_history_events": int(fresh.sum()),
    }
    refused = significant and drop > max_drop
    if refused:
        reason = (
            f"{metric} {ndcg.candidate:.4f} vs {ndcg.baseline:.4f} for the serving model on "
            f"{ndcg.users} users ({events} events): {drop:.0%} worse, interval "
            f"[{ndcg.low:+.4f}, {ndcg.high:+.4f}] below zero; allowed drop {max_drop:.0%}"
        )
    else:
        why = (
            "no significant drop"
            if not significant
            else f"a drop of {drop:.0%}, within the allowed"
        )
        reason = (
            f"{metric} {ndcg.candidate:.4f} vs {ndcg.baseline:.4f} on {ndcg.users} users "
            f"({events} events), difference interval [{ndcg.low:+.4f}, {ndcg.high:+.4f}]: {why}"
        )
    return GateVerdict(
        "refuse" if refused else "accept", reason, metric, events, ndcg, recall, max_drop, details
    )


def _continued(
    sequences: Sequences,
    users: IntArray,
    items: IntArray,
    weights: npt.NDArray[np.floating],
    fresh: npt.NDArray[np.bool_],
) -> Sequences:
    """``sequences`` with each user's fresh liked held-out events appended, in time order."""
    n_users = sequences.indptr.size - 1
    liked = fresh & (weights > 0)
    seq_users = np.repeat(np.arange(n_users), np.diff(sequences.indptr))
    rows = np.concatenate((seq_users, users[liked])).astype(np.int64)
    cols = np.concatenate((sequences.items.astype(np.int64), items[liked]))
    order = np.arange(rows.size, dtype=np.int64)  # sequences first, then the holdout's order
    zeros = np.zeros(rows.size, np.int64)
    return recent_sequences(rows, cols, (zeros, order, zeros), np.ones(rows.size, bool), n_users)


def _fresh_history(users: IntArray) -> npt.NDArray[np.bool_]:
    """For held-out events in time order: which are a user's fresh history (the earlier half of
    that user's held-out events, rounded down), the rest being what the models must find."""
    order = np.argsort(users, kind="stable")  # by user, time order kept within each
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, sorted_users.size])
    position = np.arange(sorted_users.size) - np.repeat(starts, counts)
    fresh = np.zeros(users.size, dtype=bool)
    fresh[order] = position < np.repeat(counts // 2, counts)
    return fresh
