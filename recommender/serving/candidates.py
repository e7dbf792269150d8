"""The candidates stage: every item's score for a query, from the model and from its new items.

A model family scores its own items (a latent family's vector against its item factors, batched
with concurrent requests when every item is scored; or a history through the family's item-item
scores). Items the model does not know yet (published after its snapshot: item fold-in, content
cold start; see :mod:`recommender.items.fresh`) are scored by the model's own new-items view:
a latent family's by their vectors, an item-item family's by their distributions over the
model's items, computed from the history's scores before any rule masks them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..items.fresh import FreshItemsView
from ..models import History
from ..models.answers import Query
from .model import RecommenderModel

__all__ = ["Candidates", "Scorer", "generate"]

FloatArray = npt.NDArray[np.float32]
#: Scores every item for a key (a vector or a history): the server batches concurrent requests.
Scorer = Callable[[RecommenderModel, FloatArray | History], Awaitable[FloatArray]]


@dataclass(slots=True)
class Candidates:
    """One query's candidates: ``scores`` of every model item (unmasked; None where a graph or
    the popularity fallback finds the top items at selection), and the new items' ``new_ids``
    and ``new_scores`` (None: none for this query)."""

    query: Query
    scores: FloatArray | None
    new_ids: tuple[str, ...] = ()
    new_scores: FloatArray | None = None


async def generate(
    model: RecommenderModel, view: FreshItemsView, query: Query, score: Scorer
) -> Candidates:
    """Score ``query`` with ``model`` and the new items of ``view`` (used only if it was made
    for this very model, and for a first page: later pages hold the model's own items)."""
    key = query.vector if query.vector is not None else query.history
    scores = None
    if key is not None and not model.approximate:
        # Exact scoring reads the whole model: share that read with concurrent requests.
        scores = await score(model, key)
    if query.offset or not view.for_model(model):
        return Candidates(query, scores)
    if query.vector is not None and model.latent:
        return Candidates(query, scores, view.ids, view.scores(query.vector))
    if query.history is not None and not model.latent and view.columns is not None:
        if scores is None:
            scores = model.fitted.score([query.history])[0]
        return Candidates(query, scores, view.ids, view.scores_of_row(scores))
    return Candidates(query, scores)
