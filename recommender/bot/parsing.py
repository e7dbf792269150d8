"""Reading ratings typed into a chat: ``Naruto 9, Bleach 7`` (the anime bot's flow). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["TypedRating", "parse_ratings"]

#: A title, optional punctuation, then a number (optionally "/10") at the end of a part.
_PART: Final = re.compile(
    r"^(?P<title>.*?\S)\s*[:=\-\u2013\u2014]?\s*(?P<rating>\d+(?:[.,]\d+)?)\s*(?:/\s*\d+)?$"
)
_SEPARATORS: Final = re.compile(r"[,;\n]+")


@dataclass(frozen=True, slots=True)
class TypedRating:
    title: str
    rating: float


def parse_ratings(text: str, *, max_items: int = 50) -> tuple[list[TypedRating], list[str]]:
    """Ratings typed as ``Title rating`` parts separated by commas, semicolons or new lines;
    returns the ratings and the parts that are not ``Title number``. ``Title: 9``, ``Title - 9``
    and ``Title 9/10`` work too; a title may itself hold numbers (``Akira 1988 8``)."""
    ratings: list[TypedRating] = []
    unreadable: list[str] = []
    for part in _SEPARATORS.split(text):
        part = part.strip()
        if not part:
            continue
        match = _PART.match(part)
        if match is None:
            unreadable.append(part)
            continue
        ratings.append(
            TypedRating(match["title"].strip(), float(match["rating"].replace(",", ".")))
        )
        if len(ratings) >= max_items:
            break
    return ratings, unreadable
