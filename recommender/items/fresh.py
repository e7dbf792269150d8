"""New items, recommendable within seconds: item fold-in and content cold start.

An item the serving model does not know (published after its snapshot) gets a vector

- from its **fresh events** by users the model knows: the ALS item step, the mirror of the
  user fold-in (``(XᵀCX + λI) y = XᵀCp``, X the users' factors, their weights as confidence),
  refreshed as events arrive; or else
- from its **categories** (content cold start): the mean vector of the model's items in the
  item's categories, so a brand-new item with metadata and no events yet can be shown to the
  users most likely to like it.

Such items are then scored next to the model's own (``score``), appear in ``/similar``, and are
dropped once a snapshot knows them.

For the item-item families (EASE, RP3beta, item-kNN, sequence), which have no item vectors, a new
item is represented by the same fresh co-occurrences: a distribution over the model's items,
what its users like in the window (each user's liked items sharing that user's weight, the top
``MAX_COLUMNS`` kept, summing to 1), or else its categories' items, uniformly. Its score for a
history is that distribution times the history's scores of the model's items (``scores_of_row``):
a weighted mean of the model's own scores, on their scale, so it is ranked among them; its
similar items are the items those items are similar to. Bounded: at most ``max_items`` items
(least recently updated dropped first) and ``max_users`` events per item. Updated by the
follower thread, read by requests through one reference (an immutable view), so a request never
waits for it. Pure.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..models.foldin import FoldIn

__all__ = ["FreshItems", "FreshItemsView"]

FloatArray = npt.NDArray[np.float32]
Source = Literal["events", "content"]
#: An item-item family's new item: at most this many of the model's items represent it.
MAX_COLUMNS = 100


@dataclass(frozen=True, slots=True)
class FreshItemsView:
    """The new items of one model: ids, vectors (rows; a latent family's), how each was made,
    their norms; for an item-item family ``columns`` instead: one row per new item, a
    distribution over the model's items (see the module docstring). ``model`` is the loaded
    model they were made for: a view answers for that object only (:meth:`for_model`), never
    for another that happens to carry the same version number."""

    model: object
    ids: tuple[str, ...]
    vectors: FloatArray
    sources: tuple[Source, ...]
    norms: FloatArray
    columns: sp.csr_matrix | None = None

    @property
    def size(self) -> int:
        return len(self.ids)

    def for_model(self, model: object) -> bool:
        """Whether this view holds new items for ``model`` (that very object)."""
        return self.size > 0 and self.model is model

    def scores(self, vector: FloatArray) -> FloatArray:
        return np.asarray(self.vectors @ np.asarray(vector, dtype=np.float32), dtype=np.float32)

    def scores_of_row(self, row: FloatArray) -> FloatArray:
        """An item-item family's scores of the new items, given a history's scores of the
        model's items (finite: before anything is masked)."""
        if self.columns is None:
            return np.zeros(self.size, np.float32)
        return np.asarray(self.columns @ np.asarray(row, np.float32), np.float32).ravel()


EMPTY = FreshItemsView(None, (), np.zeros((0, 1), np.float32), (), np.zeros(0, np.float32))


class FreshItems:
    """See the module docstring. ``refresh`` and ``rebase`` run off the event loop."""

    def __init__(self, catalog: Any, *, max_items: int = 10_000, max_users: int = 200) -> None:
        self.catalog = catalog  # a Catalog: category members for the content vectors
        self.max_items = max_items
        self.max_users = max_users
        self._events: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._content: OrderedDict[str, frozenset[str]] = OrderedDict()  # item -> categories
        self._dirty: set[str] = set()
        #: Per new item: a latent family's vector, or an item-item family's sparse 1 x n row.
        self._vectors: dict[str, tuple[Any, Source]] = {}
        self._lock = threading.Lock()
        self._model: Any = None
        self._user_folding: FoldIn | None = None
        self._category_means: dict[str, FloatArray] = {}
        self._category_columns: dict[str, list[int]] = {}
        self.view: FreshItemsView = EMPTY
        self.folded = 0  # item fold-ins computed (metrics)
        self.fold_seconds = 0.0

    # -- input (the follower thread) -----------------------------------------------------------

    def add_events(self, events: Iterable[tuple[str, str, float]]) -> int:
        """Events (user, item, weight); those of items the model does not know are kept.
        Returns how many were kept."""
        kept = 0
        with self._lock:
            known = self._known()
            for user, item, weight in events:
                if item in known:
                    continue
                users = self._events.get(item)
                if users is None:
                    users = self._events[item] = {}
                self._events.move_to_end(item)
                if user not in users and len(users) >= self.max_users:
                    continue
                users[user] = users.get(user, 0.0) + weight
                self._dirty.add(item)
                kept += 1
            self._bound()
        return kept

    def add_content(self, items: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Catalogue records (item, categories); kept for the items the model does not know."""
        with self._lock:
            known = self._known()
            for item, categories in items:
                cats = frozenset(categories)
                if item in known or not cats:
                    self._content.pop(item, None)
                    continue
                self._content[item] = cats
                self._content.move_to_end(item)
                self._dirty.add(item)
            while len(self._content) > self.max_items:
                gone, _ = self._content.popitem(last=False)
                self._forget(gone)

    def _known(self) -> Mapping[str, int]:
        return self._model.item_index if self._model is not None else {}

    def _bound(self) -> None:
        while len(self._events) > self.max_items:
            gone, _ = self._events.popitem(last=False)
            self._forget(gone)

    def _forget(self, item: str) -> None:
        self._dirty.discard(item)
        self._vectors.pop(item, None)

    # -- vectors -------------------------------------------------------------------------------

    def rebase(self, model: Any) -> None:
        """A new model is served: forget what it knows, recompute everything else for it."""
        with self._lock:
            self._model = model
            self._user_folding = None
            self._category_means = {}
            known = model.item_index
            for store in (self._events, self._content):
                for item in [i for i in store if i in known]:
                    del store[item]
            for record in reversed(self.catalog.newest_unknown(known, self.max_items)):
                self._content[record.id] = record.categories
            self._vectors.clear()
            self._dirty = set(self._events) | set(self._content)
        self.refresh()

    def refresh(self) -> None:
        """Recompute the vectors of items whose events or records changed (the follower calls
        it after each batch), then publish a new view. Only :meth:`rebase` changes the model."""
        with self._lock:
            model = self._model
            if model is None:
                self.view = EMPTY
                return
            dirty, self._dirty = self._dirty, set()
            started = time.perf_counter()
            self._category_columns = {}  # for this batch: shared work
            fold = self._fold if model.latent else self._fold_columns
            for item in dirty:
                found = fold(model, item)
                if found is None:
                    self._vectors.pop(item, None)
                else:
                    self._vectors[item] = found
            self.fold_seconds += time.perf_counter() - started
            if dirty:
                self.view = self._make_view(model)

    def _fold(self, model: Any, item: str) -> tuple[FloatArray, Source] | None:
        users = self._events.get(item)
        if users:
            rows, weights = [], []
            for user, weight in users.items():
                row = model.user_index.get(user)
                if row is not None:
                    rows.append(row)
                    weights.append(weight)
            if rows:
                if self._user_folding is None:
                    self._user_folding = FoldIn(
                        model.user_factors,
                        alpha=model.fitted.alpha,
                        regularization=model.fitted.regularization,
                    )
                vector = self._user_folding.vector(
                    np.asarray(rows, np.int64), np.asarray(weights, np.float32)
                )
                self.folded += 1
                if vector is not None:
                    return vector, "events"
        categories = self._content.get(item)
        if categories:
            means = [m for c in categories if (m := self._category_mean(model, c)) is not None]
            if means:
                return np.mean(means, axis=0).astype(np.float32), "content"
        return None

    def _fold_columns(self, model: Any, item: str) -> tuple[Any, Source] | None:
        """An item-item family's new item: a sparse distribution over the model's items (a
        1 x n row), what its users like, or its categories' items."""
        users = self._events.get(item)
        weights = np.zeros(model.n_items, np.float64)
        if users:
            for user, weight in users.items():
                row = model.user_index.get(user)
                if row is None or weight <= 0:
                    continue
                cols, values = model.histories.seen_row(row)
                liked = cols[values > 0]
                if liked.size:
                    weights[liked] += weight / liked.size
            self.folded += 1
            if weights.any():
                return _top_distribution(weights), "events"
        categories = self._content.get(item)
        if categories:
            for category in categories:
                cols = self._columns_of(model, category)
                if cols:
                    weights[cols] += 1.0 / len(cols)
            if weights.any():
                return _top_distribution(weights), "content"
        return None

    def _columns_of(self, model: Any, category: str) -> list[int]:
        """The model's columns of ``category``'s items, once per refresh: a burst of records
        sharing a few categories costs one pass over each, not one per record."""
        found = self._category_columns.get(category)
        if found is None:
            index = model.item_index
            found = [index[i] for i in self.catalog.members(category) if i in index]
            self._category_columns[category] = found
        return found

    def _category_mean(self, model: Any, category: str) -> FloatArray | None:
        if category not in self._category_means:
            cols = self._columns_of(model, category)
            if not cols:
                return None
            self._category_means[category] = np.asarray(
                model.item_factors[cols].mean(axis=0), dtype=np.float32
            )
        return self._category_means[category]

    def _make_view(self, model: Any) -> FreshItemsView:
        if not self._vectors:
            empty = np.zeros((0, max(model.factors, 1)), np.float32)
            return FreshItemsView(model, (), empty, (), np.zeros(0, np.float32))
        ids = tuple(self._vectors)
        if not model.latent:
            rows = sp.vstack([self._vectors[i][0] for i in ids], format="csr")
            return FreshItemsView(
                model,
                ids,
                np.zeros((len(ids), 1), np.float32),
                tuple(self._vectors[i][1] for i in ids),
                np.zeros(len(ids), np.float32),
                columns=rows.astype(np.float32),
            )
        vectors = np.stack([self._vectors[i][0] for i in ids]).astype(np.float32)
        return FreshItemsView(
            model,
            ids,
            vectors,
            tuple(self._vectors[i][1] for i in ids),
            np.linalg.norm(vectors, axis=1).astype(np.float32),
        )

    def counts(self) -> dict[str, int]:
        view = self.view
        return {
            "events": sum(s == "events" for s in view.sources),
            "content": sum(s == "content" for s in view.sources),
            "pending": len(self._dirty),
        }


def _top_distribution(weights: npt.NDArray[np.float64]) -> sp.csr_matrix:
    """The ``MAX_COLUMNS`` largest of ``weights``, summing to 1, as a sparse 1 x n row."""
    cols = np.flatnonzero(weights)
    if cols.size > MAX_COLUMNS:
        cols = np.sort(cols[np.argpartition(weights[cols], -MAX_COLUMNS)[-MAX_COLUMNS:]])
    values = weights[cols] / weights[cols].sum()
    return sp.csr_matrix(
        (values.astype(np.float32), cols, np.array([0, cols.size])), shape=(1, weights.size)
    )
