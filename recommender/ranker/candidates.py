"""The candidate table: for a batch of users, the union of each source's top items, with one row
per (user, candidate) and the features a ranker learns from: every source's score and rank side
by side, the item's and the user's features, category match and item attributes. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from ..features import ITEM_FEATURES, USER_FEATURES, ItemInformation, ItemStats, UserStats
from ..models import History
from ..user_metrics import top_k_rows

__all__ = [
    "ATTRIBUTE_PREFIX",
    "MATCH_FEATURE",
    "MATCH_LABELS",
    "CandidateTable",
    "Context",
    "Source",
    "candidate_table",
    "feature_names",
]

#: A source of candidates: scores of every item for each history (a family's ``score``, or
#: popularity broadcast), rows x items.
Source = Callable[[Sequence[History]], npt.NDArray[np.float32]]
MATCH_FEATURE: Final = "match.category"
#: The same share for the items' labels (``name=value`` pairs: ``brand=acme``).
MATCH_LABELS: Final = "match.labels"
#: Item attributes' feature names: this prefix and the attribute's name.
ATTRIBUTE_PREFIX: Final = "attr."

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Context:
    """What the features are computed from besides the sources: the window's item and user stats
    at ``now_ms``, and what the catalogue says of the items (None: nothing)."""

    items: ItemStats
    users: UserStats
    now_ms: int
    catalogue: ItemInformation | None = None


@dataclass(frozen=True)
class CandidateTable:
    """One row per (user of the batch, candidate): ``user`` is the position in the batch."""

    user: IntArray
    col: IntArray
    features: FloatArray
    names: tuple[str, ...]

    def grouped(self) -> IntArray:
        """Rows per user of the batch, in order (LightGBM's query groups)."""
        return np.bincount(self.user)


def feature_names(sources: Sequence[str], context: Context) -> tuple[str, ...]:
    names = [f"{name}.{what}" for name in sources for what in ("score", "rank")]
    names += [*ITEM_FEATURES, *USER_FEATURES]
    catalogue = context.catalogue
    if catalogue is not None:
        if catalogue.categories is not None:
            names.append(MATCH_FEATURE)
        if catalogue.labels is not None:
            names.append(MATCH_LABELS)
        if catalogue.attributes is not None:
            names += [ATTRIBUTE_PREFIX + name for name in catalogue.attribute_names]
    return tuple(names)


def candidate_table(
    sources: Mapping[str, Source],
    histories: Sequence[History],
    user_rows: IntArray,
    context: Context,
    *,
    per_source: int,
    given: Sequence[IntArray] | None = None,
) -> CandidateTable:
    """The union of each source's ``per_source`` best unseen items for each history, with
    features (:func:`feature_names`). ``user_rows``: each history's row in ``context.users``
    (-1: unknown). A candidate outside a source's top items has that source's score and rank
    ``per_source + 1``, so the ranker sees how each source judges every candidate. With
    ``given`` (item columns per history), those pairs are the rows instead, seen or not (to
    predict a rating of a known pair)."""
    batch = len(histories)
    scored: dict[str, FloatArray] = {}
    tops: list[IntArray] = []
    for name, source in sources.items():
        scores = np.asarray(source(histories), np.float32)
        scored[name] = scores.copy() if given is not None else scores
        for row, history in enumerate(histories):
            scores[row, history.cols] = -np.inf  # seen items are never candidates
        top = top_k_rows(scores, per_source)
        top[~np.isfinite(np.take_along_axis(scores, top, axis=1))] = -1
        tops.append(top)
    rows = given if given is not None else _union(tops, batch)
    user = np.repeat(np.arange(batch), [c.size for c in rows]).astype(np.int64)
    col = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
    columns: list[FloatArray] = []
    for name, top in zip(scored, tops, strict=True):
        columns.append(scored[name][user, col])
        # rank of each candidate in this source's top items (1 = best), else per_source + 1
        found = top[user] == col[:, None]  # candidates x per_source
        rank = np.where(found.any(axis=1), found.argmax(axis=1) + 1, per_source + 1)
        columns.append(rank.astype(np.float32))
    matrix = np.column_stack(columns) if columns else np.zeros((col.size, 0), np.float32)
    parts = [
        matrix,
        context.items.matrix(col, context.now_ms),
        context.users.matrix(user_rows, context.now_ms)[user],
    ]
    catalogue = context.catalogue
    if catalogue is not None:
        liked = [h.cols[h.weights > 0] for h in histories]
        for index in (catalogue.category_index, catalogue.label_index):
            if index is not None:  # the category match, the label match
                parts.append(index.match(liked, rows)[:, None])
        if catalogue.attributes is not None:
            parts.append(catalogue.attributes[col])
    features = np.column_stack(parts).astype(np.float32)
    names = feature_names(list(sources), context)
    assert features.shape[1] == len(names)
    return CandidateTable(user, col, features, names)


def _union(tops: list[IntArray], batch: int) -> list[IntArray]:
    """Each row's distinct columns over every source's top items (-1: none)."""
    union = np.concatenate(tops, axis=1)
    out = []
    for row in range(batch):
        distinct = np.unique(union[row])
        out.append(distinct[distinct >= 0])
    return out
