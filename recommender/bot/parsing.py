"""Reading ratings typed into a chat: ``Naruto 9, Bleach 7`` (the anime bot's flow). Pure.

A part reads as the regular expression
``^(?P<title>.*?\\S)\\s*[:=\\-\u2013\u2014]?\\s*(?P<rating>\\d+(?:[.,]\\d+)?)\\s*(?:/\\s*\\d+)?$``
would read it (``\\d`` and ``\\s`` in their Unicode sense: :meth:`str.isdecimal`,
:meth:`str.isspace`), but found by scanning each part once from its right end: matching that
expression takes time quadratic in the part's length when it fails (0.8-1.3 s on 4,096 digits
and a letter), and every chat waits while it runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_ECHO",
    "MAX_NUMBER",
    "MAX_TEXT",
    "MAX_TITLE",
    "MAX_UNREADABLE",
    "TypedRating",
    "parse_ratings",
]

#: Telegram's limit on a message's text; anything past it is not read.
MAX_TEXT: Final = 4096
#: Longer titles are no title anyone types (the server's search reads 200 characters).
MAX_TITLE: Final = 200
#: Characters of a rating's number, "7.25" is 4; longer numbers make a part unreadable.
MAX_NUMBER: Final = 8
#: Unreadable parts returned (to echo back), and how much of each.
MAX_UNREADABLE: Final = 10
MAX_ECHO: Final = 60

_SEPARATORS: Final = re.compile(r"[,;\n]+")
_BETWEEN: Final = frozenset(":=-\u2013\u2014")  # may stand between a title and its rating
_DECIMAL_POINTS: Final = frozenset(".,")


@dataclass(frozen=True, slots=True)
class TypedRating:
    title: str
    rating: float


def parse_ratings(text: str, *, max_items: int = 50) -> tuple[list[TypedRating], list[str]]:
    """Read ratings typed as ``Title rating`` parts separated by commas, semicolons or new lines.

    ``Title: 9``, ``Title - 9`` and ``Title 9/10`` work too; a title may itself hold numbers
    (``Akira 1988 8``). Time is linear in the text's length, which is cut to :data:`MAX_TEXT`.

    Parameters
    ----------
    text
        A chat message.
    max_items
        Reading stops after this many ratings.

    Returns
    -------
    tuple of (list of TypedRating, list of str)
        The ratings, and up to :data:`MAX_UNREADABLE` parts that are not ``Title number``
        (each cut to :data:`MAX_ECHO` characters), to tell the user.
    """
    ratings: list[TypedRating] = []
    unreadable: list[str] = []
    for part in _SEPARATORS.split(text[:MAX_TEXT]):
        part = part.strip()
        if not part:
            continue
        found = _split_part(part)
        if found is None or len(found[0]) > MAX_TITLE or len(found[1]) > MAX_NUMBER:
            if len(unreadable) < MAX_UNREADABLE:
                unreadable.append(
                    part if len(part) <= MAX_ECHO else part[: MAX_ECHO - 1] + "\u2026"
                )
            continue
        title, number = found
        ratings.append(TypedRating(title, float(number.replace(",", "."))))
        if len(ratings) >= max_items:
            break
    return ratings, unreadable


def _split_part(part: str) -> tuple[str, str] | None:
    """(title, number) of a stripped part with no separator in it, or None.

    The shortest title wins, as with the lazy ``.*?`` of the expression in the module's
    docstring. Each helper below walks left over one run of characters, so this is linear.
    """
    best: tuple[int, int, int] | None = None  # (title end, number start, number end)
    for end in _number_ends(part):
        found = _title_end(part, end)
        if found is not None and (best is None or found[0] < best[0]):
            best = (*found, end)
    if best is None:
        return None
    title_end, start, end = best
    return part[:title_end], part[start:end]


def _number_ends(part: str) -> list[int]:
    """Where the rating's number may end: before a ``/ 10`` tail, or at the end of the part."""
    ends = []
    digits = _run_start(part, len(part), str.isdecimal)
    if digits < len(part):
        slash = _run_start(part, digits, str.isspace) - 1
        if slash >= 0 and part[slash] == "/":
            ends.append(_run_start(part, slash, str.isspace))
        ends.append(len(part))
    return ends


def _title_end(part: str, end: int) -> tuple[int, int] | None:
    """(title end, number start) for the shortest title before a number ending at ``end``."""
    run = _run_start(part, end, str.isdecimal)
    if run == end:
        return None
    starts = [run]  # the number's possible starts, leftmost first
    if run >= 2 and part[run - 1] in _DECIMAL_POINTS and part[run - 2].isdecimal():
        starts = [_run_start(part, run - 1, str.isdecimal), run]
    for start in starts:
        title_end = _before_number(part, start)
        if title_end is not None:
            return title_end, start
        # A number starting at 0 leaves no title: start one digit later (the title is a digit).
        if start + 1 < (run - 1 if start < run else end):
            return start + 1, start + 1
    return None


def _before_number(part: str, start: int) -> int | None:
    """The end of the shortest title when the number starts at ``start``: what stands between
    (spaces, at most one of ``:=-`` and dashes) goes to neither; None if no title is left."""
    spaces = _run_start(part, start, str.isspace)
    if spaces >= 1 and part[spaces - 1] in _BETWEEN:
        before = _run_start(part, spaces - 1, str.isspace)
        if before >= 1:
            return before
    return spaces if spaces >= 1 else None


def _run_start(text: str, end: int, belongs: Callable[[str], bool]) -> int:
    """Where the run of characters ending at ``end`` for which ``belongs`` holds starts."""
    start = end
    while start > 0 and belongs(text[start - 1]):
        start -= 1
    return start
