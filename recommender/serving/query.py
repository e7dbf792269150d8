"""The query stage: what a client asked (:class:`Ask`, parsed and bounded by the server), and
what one model makes of it (a :class:`~recommender.models.answers.Query`: the history or vector
to score, the columns this user must not see again, where the answer comes from)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..items import ItemFilter
from ..models.answers import Query
from .model import RecommenderModel

__all__ = ["Ask", "Kind", "resolve"]

#: ``user``: a user's top items; ``items``: an anonymous session's; ``similar``: an item's
#: neighbours; ``popular``: the most popular items.
Kind = Literal["user", "items", "similar", "popular"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Ask:
    """One request for recommendations, whichever route it came by.

    ``route`` names it in the exposure log; ``fresh`` are the user's events newer than any
    snapshot (item, weight); ``items`` the session's items in order (``items``) or the item
    whose neighbours are asked for (``similar``); ``experiment``: whether a running experiment
    may answer it (a user's first page on ``/recommend``).
    """

    kind: Kind
    route: str
    n: int
    offset: int = 0
    user: str | None = None
    items: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    filter_seen: bool = True
    item_filter: ItemFilter | None = None
    fresh: tuple[tuple[str, float], ...] = field(default=(), repr=False)
    recent: bool = False
    experiment: bool = False

    @property
    def seen(self) -> frozenset[str]:
        """Items no answer may hold for this request, model or new: excluded ones, a session's
        own, the user's fresh dislikes, and (``filter_seen``) the rest of their fresh events.
        The window's seen items are the query's columns (see :func:`resolve`)."""
        seen = frozenset(self.exclude)
        if self.kind in ("items", "similar"):
            seen |= frozenset(self.items)
        elif self.kind == "user":
            seen |= frozenset(i for i, weight in self.fresh if self.filter_seen or weight < 0)
        return seen


def resolve(model: RecommenderModel, ask: Ask) -> Query:
    """What ``model`` scores for ``ask`` (a user's or a session's history)."""
    if ask.kind == "user":
        assert ask.user is not None
        return model.query_for_user(
            ask.user,
            ask.n,
            filter_seen=ask.filter_seen,
            exclude=ask.exclude,
            offset=ask.offset,
            fresh=ask.fresh,
        )
    if ask.kind == "items":
        return model.query_for_items(ask.items, ask.n, exclude=ask.exclude, offset=ask.offset)
    raise ValueError(f"a {ask.kind} request has no query")
