"""A snapshot's arrays for one trained window: the window's (ids, seen items, popularity, each
user's recent items) and the model family's own."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..models.als import AlsModel
from ..models.als_training import TrainedFactors
from ..models.base import FittedModel, Sequences
from .files import encode_ids

if TYPE_CHECKING:
    from ..window import WindowMatrix

__all__ = ["snapshot_arrays"]


def snapshot_arrays(
    matrix: WindowMatrix, model: FittedModel | TrainedFactors
) -> dict[str, np.ndarray]:
    """The arrays of a snapshot (see :mod:`recommender.snapshot`) for one trained window: the
    window's (ids, seen items, popularity, each user's recent items) and the model's own
    (``TrainedFactors``: ALS's factors)."""
    if isinstance(model, TrainedFactors):
        model = AlsModel(model.user_factors, model.item_factors, {})
    seen = matrix.user_items
    sequences = matrix.sequences or Sequences.empty(len(matrix.user_ids))
    return {
        **model.arrays(),
        "user_ids": encode_ids(matrix.user_ids),
        "item_ids": encode_ids(matrix.item_ids),
        "seen_indptr": seen.indptr.astype(np.int64),
        "seen_indices": seen.indices.astype(np.int32),
        "seen_weights": seen.data.astype(np.float32),
        "popularity": matrix.popularity,
        "recent_popularity": matrix.recent_popularity,
        "recent_indptr": sequences.indptr.astype(np.int64),
        "recent_items": sequences.items.astype(np.int32),
    }
