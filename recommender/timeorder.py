"""Whether the order of a window's events says when they happened.

The builder takes each record's timestamp (ties: its offset) as the time of the event: each
user's newest events are what self-tuning validates on, and the sequence families learn what
follows what. A bulk load of history breaks that when the history was not sorted by time: the
shared anime set has no timestamps and was published sorted by user, then item id. Its records'
timestamps are the moments they were published, a user's events a millisecond apart, and their
order is the item ids': the sequence family learnt the sort, won the newest-events validation and
was adopted, serving a tenth of the best family's quality.

A window is *unordered* when both hold:

- it is a bulk load: most users' consecutive events are less than ``BULK_GAP_MS`` apart (a
  person's consecutive interactions are seconds to days apart; MovieLens' median gap is 11 s);
- each user's events are in the order of their item ids (ascending or descending, numerically
  where every id is a number) for most users with ``MIN_SORTED_EVENTS`` events or more (in an
  order that says time that happens by chance to about 2 in 5! = 1.7 % of them).

A bulk load published in time order (MovieLens through ``recommender traffic``) keeps its
order. Sorts by other keys (a rating, a price) are not recognised: publish history in time order,
or with record timestamps set to the events' times. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["BULK_GAP_MS", "MIN_SORTED_EVENTS", "OrderCheck", "check_order", "item_ranks"]

BULK_GAP_MS: Final = 1_000
MIN_SORTED_EVENTS: Final = 5
#: At least this many users' consecutive events are needed to say anything (else: ordered).
_MIN_PAIRS: Final = 100


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """What :func:`check_order` found (reported by ``/status``)."""

    #: The median gap between a user's consecutive events, in ms (None: too few to say).
    median_gap_ms: float | None
    #: Users with ``MIN_SORTED_EVENTS`` events or more, and how many of them are in id order.
    long_users: int
    sorted_users: int

    @property
    def bulk(self) -> bool:
        return self.median_gap_ms is not None and self.median_gap_ms < BULK_GAP_MS

    @property
    def says_time(self) -> bool:
        """False: treat the window as unordered (see the module docstring)."""
        return not (self.bulk and self.long_users and 2 * self.sorted_users > self.long_users)

    def to_dict(self) -> dict[str, object]:
        return {
            "says_time": self.says_time,
            "median_gap_ms": self.median_gap_ms,
            "users_checked": self.long_users,
            "users_in_item_id_order": self.sorted_users,
        }


def item_ranks(item_ids: Sequence[str]) -> npt.NDArray[np.int64]:
    """Each item's rank in id order: numeric when every id is a number, else by string."""
    ids = list(item_ids)
    try:
        keys: np.ndarray = np.array([int(i) for i in ids], dtype=object)
    except ValueError:
        keys = np.array(ids, dtype=object)
    order = np.argsort(keys, kind="stable") if ids else np.zeros(0, np.int64)
    ranks = np.empty(len(ids), np.int64)
    ranks[order] = np.arange(len(ids), dtype=np.int64)
    return ranks


def check_order(
    users: npt.NDArray[np.integer],
    items: npt.NDArray[np.integer],
    timestamps: npt.NDArray[np.int64],
    order: npt.NDArray[np.integer],
    item_ids: Sequence[str],
) -> OrderCheck:
    """Check a window (``users`` and ``items`` as rows; ``order``: each event's rank in the
    window's order, time then offset)."""
    n = int(users.size)
    if n < 2:
        return OrderCheck(None, 0, 0)
    by_user = np.lexsort((order, users))
    u = users[by_user]
    same = u[1:] == u[:-1]
    if int(same.sum()) < _MIN_PAIRS:
        return OrderCheck(None, 0, 0)
    gaps = np.diff(timestamps[by_user])[same]
    median_gap = float(np.median(gaps))
    starts = np.flatnonzero(np.r_[True, ~same])
    counts = np.diff(np.r_[starts, n])
    long = counts >= MIN_SORTED_EVENTS
    if not long.any():
        return OrderCheck(median_gap, 0, 0)
    steps = np.diff(item_ranks(item_ids)[items[by_user]])
    # per user, how many steps go down and how many go up (the first event has none)
    owner = np.repeat(np.arange(starts.size), counts)[1:][same]
    down = np.bincount(owner, weights=steps[same] < 0, minlength=starts.size)
    up = np.bincount(owner, weights=steps[same] > 0, minlength=starts.size)
    monotone = (down == 0) | (up == 0)
    return OrderCheck(median_gap, int(long.sum()), int((monotone & long).sum()))
