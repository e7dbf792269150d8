"""Events newer than the serving snapshot, per user, in bounded memory (for fold-in).

Pure and thread-safe: a follower thread adds events while request handlers read them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .events import ParsedBatch

__all__ = ["FreshEvents", "FreshStats"]


@dataclass(frozen=True, slots=True)
class FreshStats:
    users: int
    events: int
    evicted_users: int
    dropped_events: int


class FreshEvents:
    """Per-user fresh events: at most ``max_per_user`` each (oldest dropped first), at most
    ``max_users`` users (least recently active dropped first).

    Each event is kept with its partition and offset so that a newer snapshot can drop exactly the
    events it covers.
    """

    def __init__(self, *, max_users: int = 100_000, max_per_user: int = 200) -> None:
        if max_users < 1 or max_per_user < 1:
            raise ValueError("max_users and max_per_user must be at least 1")
        self.max_users = max_users
        self.max_per_user = max_per_user
        self._users: OrderedDict[str, deque[tuple[str, float, int, int]]] = OrderedDict()
        self._lock = threading.Lock()
        self._evicted_users = 0
        self._dropped_events = 0
        self._events = 0  # kept up to date so stats() is O(1) (it is scraped by /metrics)

    def add(
        self,
        batch: ParsedBatch,
        partitions: npt.NDArray[np.int64],
        offsets: npt.NDArray[np.int64],
    ) -> None:
        """Add the accepted events of ``batch`` (metadata arrays cover the accepted events)."""
        if len(batch) == 0:
            return
        order = np.argsort(batch.user_index, kind="stable")  # group by user, keep event order
        users = batch.user_index[order]
        bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
        items, weights = batch.item_keys, batch.weights
        with self._lock:
            for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
                user = batch.user_keys[int(users[lo])]
                events = self._users.get(user)
                if events is None:
                    events = self._users[user] = deque(maxlen=self.max_per_user)
                else:
                    self._users.move_to_end(user)
                sel = order[lo:hi]
                before = len(events)
                events.extend(
                    zip(
                        [items[i] for i in batch.item_index[sel].tolist()],
                        weights[sel].tolist(),
                        partitions[sel].tolist(),
                        offsets[sel].tolist(),
                        strict=True,
                    )
                )
                self._dropped_events += before + (hi - lo) - len(events)
                self._events += len(events) - before
            while len(self._users) > self.max_users:
                _, gone = self._users.popitem(last=False)
                self._evicted_users += 1
                self._dropped_events += len(gone)
                self._events -= len(gone)

    def events(self, user: str) -> list[tuple[str, float]]:
        """The user's fresh events as (item, weight), oldest first."""
        with self._lock:
            events = self._users.get(user)
            return [(item, weight) for item, weight, _, _ in events] if events else []

    def drop_covered(self, positions: Mapping[int, int]) -> int:
        """Forget events a snapshot covers (offset below its next offset); returns how many."""
        dropped = 0
        with self._lock:
            for user in list(self._users):
                events = self._users[user]
                kept = [e for e in events if e[3] >= positions.get(e[2], 0)]
                if len(kept) != len(events):
                    dropped += len(events) - len(kept)
                    if kept:
                        self._users[user] = deque(kept, maxlen=self.max_per_user)
                    else:
                        del self._users[user]
            self._events -= dropped
        return dropped

    def stats(self) -> FreshStats:
        with self._lock:
            return FreshStats(
                users=len(self._users),
                events=self._events,
                evicted_users=self._evicted_users,
                dropped_events=self._dropped_events,
            )
