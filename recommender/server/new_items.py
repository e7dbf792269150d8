"""New items (unknown to the serving model: item fold-in, content cold start) in answers:
merged into ``/recommend`` where they score higher, and into ``/similar`` both ways (a new item
has similar items, and is one). Latent families score them by their vectors; item-item families
by their distributions over the model's items (see :mod:`recommender.items.fresh`)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from aiohttp import web

from ..items import ItemFilter
from ..items.fresh import FreshItemsView, merge
from ..models import History
from ..serving.index import select_top
from ..serving.model import Answer, Query, RecommenderModel, ScoredItem
from .state import CATALOG, CONFIG, FRESH_ITEMS

__all__ = ["new_item_scores", "similar_with_new_items", "with_new_items"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def with_new_items(
    request: web.Request,
    model: RecommenderModel,
    query: Query,
    answer: Answer,
    item_filter: ItemFilter | None,
    seen: frozenset[str],
    new_scores: FloatArray | None = None,
) -> Answer:
    """``answer`` with the items the model does not know yet (item fold-in, content cold start)
    where they score higher; never one the user has (``seen``), nor one the catalogue or the
    filter forbids. ``new_scores``: an item-item family's scores of them (see
    :func:`new_item_scores`)."""
    view = request.app[FRESH_ITEMS].view
    stale = view.size == 0 or view.model_version != model.version
    if stale or query.offset:  # later pages: the model's own items
        return answer
    if query.vector is not None:
        scores = view.scores(query.vector)
    elif new_scores is not None:
        scores = new_scores
    else:
        return answer
    catalog = request.app[CATALOG]
    best = np.argsort(-scores, kind="stable")[: query.n + len(seen) + 16]
    extra = [
        (view.ids[k], float(scores[k]))
        for k in best.tolist()
        if view.ids[k] not in seen and catalog.allows(view.ids[k], item_filter)
    ]
    if not extra:
        return answer
    merged = merge(answer.items, extra, query.n)
    explore = request.app[CONFIG].explore
    if explore > 0:  # reserved slots: the best new items for this user, even if they score low
        reserved = extra[: math.ceil(explore * query.n)]
        missing = [pair for pair in reserved if pair not in merged]
        if missing:
            merged = merged[: max(0, query.n - len(missing))] + missing
    items = [ScoredItem(i, s) for i, s in merged]
    return Answer(items, answer.source)


def new_item_scores(
    view: FreshItemsView, model: RecommenderModel, query: Query, scores: FloatArray | None
) -> tuple[FloatArray | None, FloatArray | None]:
    """For an item-item family with new items: (the history's scores of the model's items,
    computed here when not given, and the new items' scores from them), before anything is
    masked; else ``(scores, None)``."""
    if (
        model.latent
        or query.history is None
        or query.offset
        or view.columns is None
        or view.size == 0
        or view.model_version != model.version
    ):
        return scores, None
    if scores is None:
        scores = model.fitted.score([query.history])[0]
    return scores, view.scores_of_row(scores)


def similar_with_new_items(
    request: web.Request,
    model: RecommenderModel,
    item_filter: ItemFilter | None,
    excluded: IntArray,
    allowed: IntArray | None,
    item: str,
    n: int,
) -> list[ScoredItem] | None:
    """Similar items, the new ones (unknown to the model, with vectors) included both ways: a
    new item has similar items, and is one."""
    view = request.app[FRESH_ITEMS].view
    fresh = view.size > 0 and view.model_version == model.version
    if not model.latent:
        return _similar_itemwise(request, model, view if fresh else None, item_filter,
                                 excluded, allowed, item, n)  # fmt: skip
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
    return _with_new(request, view, found, cosine, item, item_filter, n)


def _with_new(
    request: web.Request,
    view: FreshItemsView,
    found: list[ScoredItem],
    scores: FloatArray,
    item: str,
    item_filter: ItemFilter | None,
    n: int,
) -> list[ScoredItem]:
    """``found`` merged with the new items by ``scores``, never ``item`` itself."""
    catalog = request.app[CATALOG]
    extra = [
        (view.ids[k], float(scores[k]))
        for k in np.argsort(-scores, kind="stable")[: n + 1].tolist()
        if view.ids[k] != item
        and np.isfinite(scores[k])
        and catalog.allows(view.ids[k], item_filter)
    ]
    return [ScoredItem(i, s) for i, s in merge(found, extra, n)]


def _similar_itemwise(
    request: web.Request,
    model: RecommenderModel,
    view: FreshItemsView | None,
    item_filter: ItemFilter | None,
    excluded: IntArray,
    allowed: IntArray | None,
    item: str,
    n: int,
) -> list[ScoredItem] | None:
    """An item-item family's similar items, new items included both ways (see
    :mod:`recommender.items.fresh`): a model item's row of scores ranks the new items by their
    distributions; a new item's distribution, scored as a history, ranks the model's items."""
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
    return _with_new(request, view, found, new, item, item_filter, n)


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
