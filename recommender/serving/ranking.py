"""The ranking stage: the best candidates the rules allow, in order.

First the top of the model's items among the columns the mask allows, merged with the new items
it allows where they score higher (``explore`` reserves a share of the slots for the best new
items even when they score lower: an item with 20 events scores below established ones under
ALS's regularisation, rightly, and would otherwise rarely be shown). Then a :class:`Ranker` may
reorder them; the default keeps the candidates' order (a learned ranker takes this slot).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from ..models.answers import Answer, ScoredItem
from .candidates import Candidates
from .model import RecommenderModel
from .query import Ask
from .rules import Mask

__all__ = ["KeepOrder", "Ranker", "merge", "select"]


class Ranker(Protocol):
    """Reorders a selected answer for the request (the learned ranking stage's slot): of the top
    ``candidates`` items (0: as many as the request asked for), the best ``ask.n``."""

    candidates: int

    async def rank(self, ask: Ask, answer: Answer) -> Answer: ...


class KeepOrder:
    """No ranker: the candidates' order is the answer's."""

    candidates = 0

    async def rank(self, ask: Ask, answer: Answer) -> Answer:
        return answer


def select(model: RecommenderModel, found: Candidates, mask: Mask, *, explore: float) -> Answer:
    """The top ``n`` (after ``offset``) of the candidates that ``mask`` allows."""
    query = found.query
    answer = model.answer(query, found.scores, excluded=mask.excluded, allowed=mask.allowed)
    if found.new_scores is None or not found.new_ids:
        return answer
    scores, ids = found.new_scores, found.new_ids
    best = np.argsort(-scores, kind="stable")[: query.n + len(mask.seen) + 16]
    extra = [
        (ids[k], float(scores[k]))
        for k in best.tolist()
        if np.isfinite(scores[k]) and mask.allows(ids[k])
    ]
    if not extra:
        return answer
    merged = merge(answer.items, extra, query.n)
    if explore > 0:  # reserved slots: the best new items for this user, even if they score low
        reserved = extra[: math.ceil(explore * query.n)]
        missing = [pair for pair in reserved if pair not in merged]
        if missing:
            merged = merged[: max(0, query.n - len(missing))] + missing
    return Answer([ScoredItem(i, s) for i, s in merged], answer.source)


def merge(
    items: list[ScoredItem], extra: list[tuple[str, float]], wanted: int
) -> list[tuple[str, float]]:
    """A model's scored items and new items' (item, score) pairs, best ``wanted`` first."""
    combined = [(s.item, s.score) for s in items] + extra
    combined.sort(key=lambda pair: -pair[1])
    return combined[:wanted]
