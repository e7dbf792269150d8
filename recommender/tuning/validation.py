"""The validation split self-tuning judges settings on, and the per-user score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..models import FittedModel, Sequences, TrainingData, row_histories
from ..models.data import pair_matrix, recent_sequences
from ..user_metrics import per_user_metrics, top_k_rows
from ..window import WindowEvents

__all__ = ["ValidationSplit", "per_user_ndcg", "split"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ValidationSplit:
    """Training matrix and validation truth (users x items of the window), each user's newest
    liked training items in order (for sequence-aware families), and who scores what."""

    train: sp.csr_matrix
    truth: sp.csr_matrix
    search_users: IntArray
    confirm_users: IntArray
    sequences: Sequences
    #: Per event of the window, whether it is validation (not trained on).
    is_validation: npt.NDArray[np.bool_]

    @property
    def events(self) -> int:
        return int(self.truth.nnz)

    @property
    def data(self) -> TrainingData:
        return TrainingData(self.train, self.sequences)


def split(events: WindowEvents, *, fraction: float = 0.2, seed: int = 0) -> ValidationSplit:
    """Each user's newest ``fraction`` of events (at least one, for users with two or more)
    is validation; users with liked validation items they did not train on are split in two."""
    rng = np.random.default_rng(seed)
    n = len(events)
    shuffled = rng.permutation(n)
    # Ties in time in the window's order; without one (a file), in a seeded shuffle.
    tie = shuffled if events.order is None else events.order
    if events.timed:
        order = np.lexsort((shuffled, tie, events.timestamps, events.users))
    else:  # a bulk load's order says nothing of time: each user's events in a seeded shuffle
        order = np.lexsort((tie, events.users))
    users = events.users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if n else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, n])
    held = np.where(
        counts >= 2, np.minimum(np.maximum(1, np.floor(counts * fraction)), counts - 1), 0
    )
    position = np.arange(n) - np.repeat(starts, counts)
    is_validation = np.zeros(n, dtype=bool)
    is_validation[order] = position >= np.repeat(counts - held, counts)
    shape = (len(events.user_ids), len(events.item_ids))
    train_mask = ~is_validation
    train = pair_matrix(
        events.users[train_mask], events.items[train_mask], events.weights[train_mask], shape
    )
    liked = is_validation & (events.weights > 0)
    truth = sp.csr_matrix(
        (np.ones(int(liked.sum())), (events.users[liked], events.items[liked])), shape=shape
    )
    truth.sum_duplicates()
    truth.data[:] = 1.0
    truth = truth - truth.multiply(train != 0)
    truth.eliminate_zeros()
    judged = rng.permutation(np.flatnonzero(np.diff(truth.indptr) > 0))
    half = judged.size // 2
    # The order events were taken in: ties in time broken as the split broke them.
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    zeros = np.zeros(n, np.int64)
    sequences = recent_sequences(
        events.users,
        events.items,
        (zeros, rank, zeros),
        train_mask & (events.weights > 0),
        shape[0],
    )
    return ValidationSplit(
        train, truth, np.sort(judged[:half]), np.sort(judged[half:]), sequences, is_validation
    )


def per_user_ndcg(
    model: FittedModel, data: ValidationSplit, users: IntArray, k: int
) -> npt.NDArray[np.float64]:
    """NDCG@k per user, as the server answers a known user (their training items as their
    history; ALS: the trained factors), training items excluded."""
    out = np.empty(users.size)
    train = data.train
    for lo in range(0, users.size, 512):
        chunk = users[lo : lo + 512]
        histories = row_histories(train, chunk.tolist(), data.sequences)
        scores = np.asarray(model.score(histories), dtype=np.float64)
        seen = train[chunk]
        rows = np.repeat(np.arange(chunk.size), np.diff(seen.indptr))
        scores[rows, seen.indices] = -np.inf
        out[lo : lo + chunk.size] = per_user_metrics(top_k_rows(scores, k), data.truth[chunk], k)[0]
    return out
