"""A snapshot's arrays for one trained window: the window's (ids, seen items, popularity, each
user's recent items) and the model family's own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ..models.als import AlsModel
from ..models.als_training import TrainedFactors
from ..models.base import FittedModel, Sequences
from .files import encode_ids

if TYPE_CHECKING:
    from ..ranker.window_fit import RankerOutcome, WindowFeatures
    from ..window import WindowMatrix

__all__ = ["feature_arrays", "ranker_arrays", "snapshot_arrays"]


def snapshot_arrays(
    matrix: WindowMatrix,
    model: FittedModel | TrainedFactors,
    *,
    extra: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of a snapshot (see :mod:`recommender.snapshot`) for one trained window: the
    window's (ids, seen items, popularity, each user's recent items) and the model's own
    (``TrainedFactors``: ALS's factors); ``extra``: a serving ranker's (``RANKER_ARRAYS``)."""
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
        **(extra or {}),
    }


def ranker_arrays(
    outcome: RankerOutcome, features: WindowFeatures
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A ranker's arrays (``RANKER_ARRAYS``: none unless it serves) and manifest section (its
    decision and measures; with its objective and feature schema when it serves)."""
    section = outcome.to_dict()
    if not outcome.serve or outcome.fit is None:
        return {}, section
    arrays = {**outcome.fit.ranker.arrays(), **feature_arrays(features)}
    return arrays, {**section, **outcome.fit.ranker.describe(), "newest_ms": features.newest_ms}


def feature_arrays(features: WindowFeatures) -> dict[str, np.ndarray]:
    """The window's item and user stats a serving ranker computes its features from, and what
    the catalogue said of its items (``CATALOGUE_ARRAYS``) where the ranker learnt from it."""
    items, users = features.items, features.users
    catalogue: dict[str, np.ndarray] = {}
    information = features.information
    if information is not None:
        n_items = items.popularity.shape[0]
        attributes = information.attributes
        if attributes is None:
            attributes = np.zeros((n_items, 0), np.float32)
        catalogue = {"feature_item_attributes": attributes}
        for name, sets in (("category", information.categories), ("label", information.labels)):
            if sets is None:
                sets = sp.csr_matrix((n_items, 0), dtype=np.float32)
            catalogue[f"feature_item_{name}_indptr"] = sets.indptr.astype(np.int64)
            catalogue[f"feature_item_{name}_indices"] = sets.indices.astype(np.int32)
    return {
        **catalogue,
        "feature_item_popularity": items.popularity,
        "feature_item_recent": items.recent,
        "feature_item_first_ms": items.first_ms,
        "feature_user_events": users.events,
        "feature_user_liked": users.liked,
        "feature_user_first_ms": users.first_ms,
        "feature_user_last_ms": users.last_ms,
    }
