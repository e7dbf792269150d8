"""Similar items (``/similar``): the model family's neighbours of an item, among what the rules
allow, with the model's new items both ways (a new item has similar items, and is one). Latent
families compare vectors (cosine); item-item families score the item as a one-item history, and
a new item by its distribution over the model's items (see :mod:`recommender.items.fresh`)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..items.fresh import FreshItemsView
from ..models import History
from ..models.answers import ScoredItem
from .index import select_top
from .model import RecommenderModel
from .ranking import merge
from .rules import Mask

__all__ = ["similar_items"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def similar_items(
    model: RecommenderModel, view: FreshItemsView, mask: Mask, item: str, n: int
) -> list[ScoredItem] | None:
    """The ``n`` items most similar to ``item`` that ``mask`` allows, the new ones (unknown to
    the model, with vectors for it) included both ways: a new item has similar items, and is
    one. None: an item neither the model nor its new items know."""
    fresh = view.for_model(model)
    excluded, allowed = mask.excluded, mask.allowed
    if not model.latent:
        return _similar_itemwise(model, view if fresh else None, mask, item, n)
    if item in model.item_index:
        found = model.similar_items(item, n, excluded=excluded, allowed=allowed)
        if not fresh or found is None:
            return found
        vector = np.asarray(model.item_factors[model.item_index[item]], dtype=np.float32)
    elif fresh and item in view.ids:
        vector = view.vectors[view.ids.index(item)]
        found = _cosine_in_model(model, vector, n, excluded, allowed)
    else:
        return None
    norm = max(float(np.linalg.norm(vector)), 1e-12)
    cosine = view.vectors @ vector / np.maximum(view.norms * norm, 1e-12)
    return _with_new(view, found, cosine, item, mask, n)


def _with_new(
    view: FreshItemsView,
    found: list[ScoredItem],
    scores: FloatArray,
    item: str,
    mask: Mask,
    n: int,
) -> list[ScoredItem]:
    """``found`` merged with the new items by ``scores``, never ``item`` itself."""
    extra = [
        (view.ids[k], float(scores[k]))
        for k in np.argsort(-scores, kind="stable")[: n + len(mask.seen) + 1].tolist()
        if view.ids[k] != item and np.isfinite(scores[k]) and mask.allows(view.ids[k])
    ]
    return [ScoredItem(i, s) for i, s in merge(found, extra, n)]


def _similar_itemwise(
    model: RecommenderModel, view: FreshItemsView | None, mask: Mask, item: str, n: int
) -> list[ScoredItem] | None:
    """An item-item family's similar items, new items included both ways (see
    :mod:`recommender.items.fresh`): a model item's row of scores ranks the new items by their
    distributions; a new item's distribution, scored as a history, ranks the model's items."""
    excluded, allowed = mask.excluded, mask.allowed
    col = model.item_index.get(item)
    if col is not None:
        found = model.similar_items(item, n, excluded=excluded, allowed=allowed)
        if view is None or found is None:
            return found
        history = History(np.array([col], np.int64), np.ones(1, np.float32))
    elif view is not None and view.columns is not None and item in view.ids:
        row = view.columns[view.ids.index(item)]
        history = History(row.indices.astype(np.int64), row.data.astype(np.float32))
        found = None
    else:
        return None
    assert view is not None  # narrowed above: a new item is only found in a view
    scores = model.fitted.score([history])[0]
    new = view.scores_of_row(scores)
    new[new <= 0] = -np.inf  # no shared evidence is no similarity (as for the model's own)
    if found is None:
        found = _top_among(model, scores, n, excluded, allowed)
    return _with_new(view, found, new, item, mask, n)


def _cosine_in_model(
    model: RecommenderModel,
    vector: FloatArray,
    n: int,
    excluded: IntArray,
    allowed: IntArray | None,
) -> list[ScoredItem]:
    items = np.asarray(model.item_factors, dtype=np.float32)
    norms = np.linalg.norm(items, axis=1) * max(float(np.linalg.norm(vector)), 1e-12)
    cosine = ((items @ vector) / np.maximum(norms, 1e-12)).astype(np.float32)
    return _top_among(model, cosine, n, excluded, allowed)


def _top_among(
    model: RecommenderModel,
    scores: FloatArray,
    n: int,
    excluded: IntArray,
    allowed: IntArray | None,
) -> list[ScoredItem]:
    """The model's ``n`` best items by ``scores`` (changed in place), never ``excluded`` ones,
    only ``allowed`` ones when given."""
    if excluded.size:
        scores[excluded] = -np.inf
    if allowed is not None:
        keep = np.full(scores.size, -np.inf, np.float32)
        keep[allowed] = scores[allowed]
        scores = keep
    top = select_top(scores, n)  # finite scores only
    return [ScoredItem(model.item_ids[c], float(scores[c])) for c in top.tolist()]
