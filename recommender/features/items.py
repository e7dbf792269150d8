"""Item features: what the window says of an item (popularity, its trend, its age) and what its
record says (numeric ``attributes``). Vectorised over the window's events; pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["ITEM_FEATURES", "ItemStats", "attribute_matrix", "attribute_names", "item_stats"]

#: The window's features of an item, in :meth:`ItemStats.matrix`'s column order.
ITEM_FEATURES: Final = ("item.popularity", "item.trend", "item.age_days")
#: The newest part of the window's time span that counts as recent for the trend.
RECENT_SHARE: Final = 0.25
#: Popularity is a share of the window's likes per this many.
PER_LIKES: Final = 10_000.0
_DAY_MS: Final = 86_400_000
_NEVER: Final = np.iinfo(np.int64).max

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ItemStats:
    """Per item column: liked events in the window, liked events in its newest quarter (by time),
    and the time of its first event (``_NEVER`` if it has none)."""

    popularity: npt.NDArray[np.int64]
    recent: npt.NDArray[np.int64]
    first_ms: npt.NDArray[np.int64]

    @cached_property
    def total_liked(self) -> int:
        return int(self.popularity.sum())

    def matrix(self, cols: IntArray, now_ms: int) -> FloatArray:
        """Rows for ``cols`` in :data:`ITEM_FEATURES` order. The popularity is the item's share
        of the window's likes, per 10,000: a count would grow with the window, and the ranker
        learns on most of a window but answers on all of it. The trend is the share of the
        item's likes in the window's newest quarter over a quarter (1: steady; above: rising);
        unknown (NaN) without likes, as is the age of an item without events."""
        likes = self.popularity[cols].astype(np.float32)
        popularity = likes * (PER_LIKES / max(self.total_liked, 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            trend = self.recent[cols] / (likes * RECENT_SHARE)
        first = self.first_ms[cols]
        age = np.where(first == _NEVER, np.nan, (now_ms - first) / _DAY_MS)
        return np.column_stack([popularity, trend, age]).astype(np.float32)


def item_stats(
    items: IntArray, times_ms: IntArray, weights: npt.NDArray[np.floating], n_items: int
) -> ItemStats:
    """The stats of every item column from the window's events (column, time, weight)."""
    liked = weights > 0
    popularity = np.bincount(items[liked], minlength=n_items).astype(np.int64)
    recent = np.zeros(n_items, np.int64)
    first = np.full(n_items, _NEVER, np.int64)
    if items.size:
        newest, oldest = int(times_ms.max()), int(times_ms.min())
        cut = newest - (newest - oldest) * RECENT_SHARE
        recent = np.bincount(items[liked & (times_ms >= cut)], minlength=n_items).astype(np.int64)
        order = np.argsort(times_ms, kind="stable")
        seen, at = np.unique(items[order], return_index=True)
        first[seen] = times_ms[order][at]
    return ItemStats(popularity, recent, first)


def attribute_names(records: Iterable[Mapping[str, float]], *, limit: int = 32) -> list[str]:
    """The attribute names a ranker uses: the ``limit`` most frequent among ``records`` (ties by
    name, so that the choice does not depend on the records' order)."""
    counts = Counter(name for attributes in records for name in attributes)
    return sorted(counts, key=lambda name: (-counts[name], name))[:limit]


def attribute_matrix(
    item_ids: Sequence[str],
    attributes_of: Callable[[str], Mapping[str, float] | None],
    names: Sequence[str],
) -> FloatArray:
    """Items x ``names``: each item's attributes as its record gives them, NaN where it has none
    (filled with the schema's defaults before ranking)."""
    out = np.full((len(item_ids), len(names)), np.nan, np.float32)
    position = {name: k for k, name in enumerate(names)}
    for row, item in enumerate(item_ids):
        for name, value in (attributes_of(item) or {}).items():
            column = position.get(name)
            if column is not None:
                out[row, column] = value
    return out
