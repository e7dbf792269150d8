"""The rules stage: what an answer may hold, whatever scored it.

The catalogue says which items may be shown now (hidden, deleted, expired, not yet available,
outside the catalogue with ``--catalog-only``) and which a request's filter selects (categories,
labels, excluded categories); the query says what this user must not see again (seen items with
``filter_seen``, ``exclude``, dislikes). :class:`Visibility` turns the catalogue's part into one
model's columns and caches them; it belongs to that model's pipeline, so two models, whatever
their version numbers, never share a cache. :class:`Mask` is one request's rules, applied to the
model's items (columns) and to new items (ids).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from ..items import Catalog, ItemFilter

__all__ = ["Mask", "Visibility"]

IntArray = npt.NDArray[np.int64]
#: Filters remembered per model (each a few arrays of columns).
_CACHED_FILTERS: Final = 64


@dataclass(frozen=True, slots=True)
class Mask:
    """One request's rules: ``excluded`` columns never answered, ``allowed`` the only columns
    that may be (None: any); new items (ids no model column has) pass :meth:`allows`."""

    excluded: IntArray
    allowed: IntArray | None
    catalog: Catalog
    item_filter: ItemFilter | None
    seen: frozenset[str]
    catalog_only: bool = False

    def allows(self, item: str) -> bool:
        """Whether a new item may be answered (shown now, through the filter, not seen; with
        ``--catalog-only``, in the catalogue)."""
        if item in self.seen:
            return False
        return self.catalog.allows(item, self.item_filter, catalog_only=self.catalog_only)


class Visibility:
    """One model's columns as the catalogue allows them, cached per catalogue state and filter.

    Parameters
    ----------
    catalog : Catalog
        Shared by every model served.
    item_index : mapping
        The model's item ids to columns.
    catalog_only : bool
        Only items with a catalogue record may be answered.
    """

    def __init__(
        self, catalog: Catalog, item_index: Mapping[str, int], *, catalog_only: bool = False
    ) -> None:
        self.catalog = catalog
        self.item_index = item_index
        self.catalog_only = catalog_only
        self.n_items = len(item_index)
        self._cache: OrderedDict[object, tuple[IntArray, IntArray | None]] = OrderedDict()
        self._lock = threading.Lock()

    def columns(
        self, item_filter: ItemFilter | None = None, *, now_ms: int | None = None
    ) -> tuple[IntArray, IntArray | None]:
        """(columns never to answer, the only columns allowed or None for any)."""
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        key = (self.catalog.state(now), item_filter)
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        found = self.catalog.columns(
            self.item_index, item_filter, catalog_only=self.catalog_only, now_ms=now
        )
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > _CACHED_FILTERS:
                self._cache.popitem(last=False)
        return found

    def mask(
        self,
        item_filter: ItemFilter | None,
        seen: frozenset[str] = frozenset(),
        *,
        now_ms: int | None = None,
    ) -> Mask:
        """One request's rules. A wide filter (more than a quarter of the items) becomes
        excluded columns, so the answer takes the usual path (a graph or the batched product)."""
        excluded, allowed = self.columns(item_filter, now_ms=now_ms)
        if allowed is not None and allowed.size * 4 > self.n_items:
            excluded = np.union1d(excluded, np.setdiff1d(np.arange(self.n_items), allowed))
            allowed = None
        return Mask(excluded, allowed, self.catalog, item_filter, seen, self.catalog_only)

    def warm(self) -> None:
        """Compute the unfiltered columns for the catalogue as it is now (the follower calls it
        after applying records, so requests find them cached)."""
        self.columns(None)
