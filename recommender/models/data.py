"""What model families learn from: the window's summed pair weights, each user's recent liked
items in order, and the helpers that build them from event columns. Pure: numpy and scipy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..events import clip_pair_weights

__all__ = ["MAX_RECENT", "Sequences", "TrainingData", "pair_matrix", "recent_sequences"]

IntArray = npt.NDArray[np.int64]

#: The newest liked events per user a sequence-aware family may look at (window and fresh).
MAX_RECENT = 50


@dataclass(frozen=True, slots=True)
class Sequences:
    """Per user (row of the window matrix), the columns of their liked events (weight > 0) in
    event-time order, oldest first, at most MAX_RECENT of the newest: ``items[indptr[u]:
    indptr[u + 1]]``. An item may repeat (a user who came back to it)."""

    indptr: IntArray
    items: npt.NDArray[np.int32]

    def of(self, row: int) -> IntArray:
        return self.items[self.indptr[row] : self.indptr[row + 1]].astype(np.int64)

    @classmethod
    def empty(cls, n_users: int) -> Sequences:
        return cls(np.zeros(n_users + 1, np.int64), np.zeros(0, np.int32))


@dataclass(frozen=True, slots=True)
class TrainingData:
    """What a family learns from: the window's users x items matrix of summed weights (float32
    CSR; explicit zeros are neutral events) and each user's recent liked items in order."""

    user_items: sp.csr_matrix
    sequences: Sequences

    @property
    def shape(self) -> tuple[int, int]:
        n_users, n_items = self.user_items.shape
        return int(n_users), int(n_items)


def recent_sequences(
    rows: IntArray,
    cols: IntArray,
    keys: tuple[np.ndarray, np.ndarray, np.ndarray],
    mask: npt.NDArray[np.bool_],
    n_users: int,
    limit: int = MAX_RECENT,
) -> Sequences:
    """Per user row, the columns of the events in ``mask``, oldest first by ``keys`` ((partition,
    offset, timestamp): the window's order), the newest ``limit`` of them."""
    chosen = np.flatnonzero(mask)
    partitions, offsets, ts = (k[chosen] for k in keys)
    users = rows[chosen]
    order = np.lexsort((partitions, offsets, ts, users))
    users, items = users[order], cols[chosen][order]
    counts = np.bincount(users, minlength=n_users)
    ends = np.cumsum(counts)
    from_end = np.repeat(ends, counts) - np.arange(users.size)  # 1 for each user's newest
    keep = from_end <= limit
    kept = np.bincount(users[keep], minlength=n_users)
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(kept, out=indptr[1:])
    return Sequences(indptr, items[keep].astype(np.int32))


def pair_matrix(
    rows: IntArray, cols: IntArray, weights: npt.NDArray[np.floating], shape: tuple[int, int]
) -> sp.csr_matrix:
    """Users x items of summed weights, each pair capped (see ``clip_pair_weights``). A pair
    summing to 0 (a neutral rating, or a like undone by a dislike) stays as an explicit zero:
    seen, and ignored by training (implicit reads it as confidence 0)."""
    matrix = sp.csr_matrix((weights.astype(np.float64), (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    return sp.csr_matrix(
        (clip_pair_weights(matrix.data), matrix.indices, matrix.indptr), shape=shape
    )
