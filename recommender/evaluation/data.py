"""Interaction files for evaluation: MovieLens ratings.csv, the anime .dat files, plain CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..ratings import RatingScale

__all__ = ["Interactions", "read_interactions", "to_matrix", "with_rating_scale"]


@dataclass(frozen=True, slots=True)
class Interactions:
    """Events with dense user/item codes. ``timestamps`` is None when the file has none."""

    users: npt.NDArray[np.int64]
    items: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float32]
    timestamps: npt.NDArray[np.int64] | None
    user_ids: list[str]
    item_ids: list[str]
    source: str

    def __len__(self) -> int:
        return int(self.users.size)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def subset(self, mask: npt.NDArray[np.bool_]) -> Interactions:
        """The same id spaces, fewer events."""
        return Interactions(
            self.users[mask],
            self.items[mask],
            self.weights[mask],
            None if self.timestamps is None else self.timestamps[mask],
            self.user_ids,
            self.item_ids,
            self.source,
        )


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_HEADER_NAMES = {"user", "userid", "user_id", "users", "uid"}


def _is_header(row: list[str]) -> bool:
    """A header names its user column, or has a non-numeric weight/timestamp column."""
    if row[0].strip().lower() in _HEADER_NAMES:
        return True
    return any(not _number(cell) for cell in row[2:4])


def read_interactions(path: Path, *, min_rating: float | None = None) -> Interactions:
    """Read ``user,item[,weight[,timestamp]]`` rows (comma or tab separated, optional header).

    MovieLens ``ratings.csv`` (userId,movieId,rating,timestamp) and the anime ``.dat`` files
    (User_ID, Anime_ID, Feedback; tab-separated) are this format. ``min_rating`` keeps only rows
    whose weight is at least that (e.g. 4 stars as positives).
    """
    with path.open(newline="", encoding="utf-8") as f:
        first = f.readline()
        delimiter = "\t" if "\t" in first else ","
        f.seek(0)
        rows = list(csv.reader(f, delimiter=delimiter))
    if rows and _is_header(rows[0]):
        rows = rows[1:]  # a header line
    rows = [r for r in rows if len(r) >= 2]
    if not rows:
        raise ValueError(f"{path}: no interactions")
    width = min(len(r) for r in rows)
    users_raw = np.array([r[0] for r in rows])
    items_raw = np.array([r[1] for r in rows])
    weights = (
        np.array([float(r[2]) for r in rows], dtype=np.float32)
        if width >= 3
        else np.ones(len(rows), np.float32)
    )
    stamps = np.array([int(float(r[3])) for r in rows], dtype=np.int64) if width >= 4 else None
    keep = np.ones(len(rows), bool) if min_rating is None else weights >= min_rating
    user_ids, users = np.unique(users_raw[keep], return_inverse=True)
    item_ids, items = np.unique(items_raw[keep], return_inverse=True)
    return Interactions(
        users.astype(np.int64).ravel(),
        items.astype(np.int64).ravel(),
        weights[keep],
        None if stamps is None else stamps[keep],
        [str(u) for u in user_ids],
        [str(i) for i in item_ids],
        f"{path.name}" + (f", ratings >= {min_rating:g}" if min_rating is not None else ""),
    )


def with_rating_scale(data: Interactions, scale: RatingScale) -> Interactions:
    """``data`` with its weights read as ratings on ``scale`` (like / neutral / dislike weights,
    as the builder's ``--ratings``); ratings off the scale are dropped."""
    weights, valid = scale.weights(data.weights)
    mapped = Interactions(
        data.users, data.items, weights.astype(np.float32), data.timestamps,
        data.user_ids, data.item_ids, data.source + f", ratings as {scale.spec}",
    )  # fmt: skip
    return mapped.subset(valid)


def to_matrix(data: Interactions, *, binary: bool = False) -> sp.csr_matrix:
    """Users x items matrix of summed weights (or 1 per interacted pair with ``binary``)."""
    values = np.ones(len(data), np.float32) if binary else data.weights
    matrix = sp.csr_matrix(
        (values, (data.users, data.items)), shape=(data.n_users, data.n_items), dtype=np.float32
    )
    matrix.sum_duplicates()
    if binary:
        matrix.data[:] = 1.0
    return matrix
