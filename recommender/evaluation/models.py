"""The models compared by ``recommender evaluate``: popularity, item-kNN, ALS."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..models import (
    FittedModel,
    Sequences,
    Setting,
    TrainingData,
    make_family,
    row_histories,
)
from ..models.als_training import AlsParams, train_als

__all__ = [
    "SEED_ALS",
    "AlsModel",
    "FamilyModel",
    "ItemKnn",
    "Popularity",
    "Recommender",
    "likes_only",
    "top_k",
]

#: The seed's ALS settings.
SEED_ALS = AlsParams(factors=20, regularization=0.1, iterations=20, alpha=15.0)

IntArray = npt.NDArray[np.int64]


class Recommender(Protocol):
    name: str

    def fit(self, train: sp.csr_matrix) -> float:
        """Learn from a users x items matrix; returns training seconds."""
        ...

    def recommend(self, users: IntArray, k: int) -> IntArray:
        """Top-k item columns per user (train items excluded), -1 where fewer exist."""
        ...


def top_k(scores: npt.NDArray[np.float32], seen: sp.csr_matrix, k: int) -> IntArray:
    """Row-wise top-k of ``scores`` (users x items), never an item the user has in ``seen``."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    scores[rows, seen.indices] = -np.inf
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top[~np.isfinite(np.take_along_axis(scores, top, axis=1))] = -1
    return top.astype(np.int64)


@dataclass
class Popularity:
    """The most popular items (by number of users) the user does not have yet."""

    name: str = "popularity"
    _train: sp.csr_matrix | None = None
    _counts: npt.NDArray[np.float32] | None = None

    def fit(self, train: sp.csr_matrix) -> float:
        started = time.perf_counter()
        self._train = train
        self._counts = np.asarray((train > 0).sum(axis=0), dtype=np.float32).ravel()
        return time.perf_counter() - started

    def recommend(self, users: IntArray, k: int) -> IntArray:
        assert self._train is not None and self._counts is not None
        out = []
        for lo in range(0, users.size, 2048):
            batch = users[lo : lo + 2048]
            scores = np.broadcast_to(self._counts, (batch.size, self._counts.size))
            out.append(top_k(scores, self._train[batch], k))
        return np.concatenate(out) if out else np.zeros((0, k), np.int64)


@dataclass
class ItemKnn:
    """implicit's item-item nearest neighbours: ``cosine`` or ``bm25`` weighting.

    The neighbours are learnt, and users scored, from likes only (positive weights): implicit's
    kNN models read every weight as a non-negative confidence, so a dislike (negative) or a
    neutral rating (0) would turn similarities negative or undefined. Every rated item still
    counts as seen: it is never recommended back.
    """

    kind: str = "cosine"
    neighbours: int = 100
    name: str = ""
    _similarity: sp.csr_matrix | None = None
    _likes: sp.csr_matrix | None = None
    _train: sp.csr_matrix | None = None

    def __post_init__(self) -> None:
        self.name = self.name or f"item-kNN ({self.kind})"

    def fit(self, train: sp.csr_matrix) -> float:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        model = (
            BM25Recommender(K=self.neighbours)
            if self.kind == "bm25"
            else CosineRecommender(K=self.neighbours)
        )
        started = time.perf_counter()
        likes = likes_only(train)
        with warnings.catch_warnings():
            # implicit converts its own intermediate COO matrix and warns about it
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model.fit(likes, show_progress=False)
        self._similarity, self._likes, self._train = model.similarity.tocsr(), likes, train
        return time.perf_counter() - started

    def recommend(self, users: IntArray, k: int) -> IntArray:
        """As implicit scores: a user's likes times the item similarities; items no liked item
        leads to are not recommended (-1 where fewer than ``k`` are reached)."""
        assert self._similarity is not None and self._likes is not None
        assert self._train is not None
        out = []
        for lo in range(0, users.size, 1024):
            batch = users[lo : lo + 1024]
            reached = (self._likes[batch] @ self._similarity).tocsr()
            scores = np.full(reached.shape, -np.inf, np.float32)
            rows = np.repeat(np.arange(batch.size), np.diff(reached.indptr))
            scores[rows, reached.indices] = reached.data
            out.append(top_k(scores, self._train[batch], k))
        return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def likes_only(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` without its non-positive entries (dislikes, neutral ratings)."""
    likes = matrix.multiply(matrix > 0).tocsr()
    likes.eliminate_zeros()
    return likes.astype(np.float32)


@dataclass
class AlsModel:
    """Our ALS (implicit, through :func:`recommender.models.als_training.train_als`)."""

    params: AlsParams = field(default_factory=AlsParams)
    name: str = "ALS"
    _user: npt.NDArray[np.float32] | None = None
    _item: npt.NDArray[np.float32] | None = None
    _train: sp.csr_matrix | None = None

    def fit(self, train: sp.csr_matrix) -> float:
        factors = train_als(train, self.params)
        self._user, self._item, self._train = factors.user_factors, factors.item_factors, train
        return factors.seconds

    def recommend(self, users: IntArray, k: int) -> IntArray:
        assert self._user is not None and self._item is not None and self._train is not None
        out = []
        for lo in range(0, users.size, 1024):
            batch = users[lo : lo + 1024]
            out.append(top_k(self._user[batch] @ self._item.T, self._train[batch], k))
        return np.concatenate(out) if out else np.zeros((0, k), np.int64)


@dataclass
class FamilyModel:
    """Any model family (:mod:`recommender.models`) with one setting, scored as the server
    answers a known user: from their training items (ALS: the trained factors)."""

    setting: Setting
    name: str = ""
    sequences: Sequences | None = None  # each user's training items in order, if known
    _model: FittedModel | None = None
    _train: sp.csr_matrix | None = None

    def __post_init__(self) -> None:
        self.name = self.name or self.setting.family

    def fit(self, train: sp.csr_matrix) -> float:
        started = time.perf_counter()
        sequences = self.sequences or Sequences.empty(train.shape[0])
        family = make_family(self.setting.family)
        self._model = family.fit(TrainingData(train, sequences), self.setting.params)
        self._train = train
        return time.perf_counter() - started

    def recommend(self, users: IntArray, k: int) -> IntArray:
        assert self._model is not None and self._train is not None
        train, sequences = self._train, self.sequences
        out = []
        for lo in range(0, users.size, 512):
            batch = users[lo : lo + 512]
            histories = row_histories(train, batch.tolist(), sequences)
            out.append(top_k(self._model.score(histories), train[batch], k))
        return np.concatenate(out) if out else np.zeros((0, k), np.int64)
