"""Events newer than the serving snapshot, per user, in a memory budget (for fold-in).

Pure and thread-safe: a follower thread adds events while request handlers read them.

Layout: flat numpy columns, one row per event (user row, item row, weight, partition, offset,
and the row of the same user's previous event: a linked list per user, newest first), plus three
numbers per user (newest event, event count, last activity). Adding a batch is vectorised: Python
work is per *distinct* id of the batch, never per event. About 26 bytes an event and 150 to 200 an
active user (``bench/run.py`` measures both).

Bounds: each user keeps their newest ``max_per_user`` events; when the estimated size passes
``max_bytes`` (or the users pass ``max_users``), the least recently active users are dropped,
down to 80 % of the bound. Dropped rows are reclaimed by a vectorised compaction, which also runs
when a newer snapshot covers events (:meth:`FreshEvents.drop_covered`), so memory is returned.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from ..events import ParsedBatch
from ..vocab import Vocabulary

__all__ = ["EVENT_BYTES", "ID_BYTES", "DropReason", "FreshEvents", "FreshStats"]

DropReason = Literal["user_cap", "memory", "lost_log"]
#: Bytes per stored event: user, item, weight, previous (4 each), partition (2), offset (8).
EVENT_BYTES: Final = 26
#: Estimated bytes per distinct user or item id (its str, dict and list slots, per-row arrays).
ID_BYTES: Final = 160
_MIN_CAPACITY: Final = 1024

IntArray = npt.NDArray[np.int64]


def _group_edges(keys: npt.NDArray[np.integer]) -> tuple[np.ndarray, np.ndarray]:
    """For sorted ``keys``: masks of each group's first and last position."""
    if keys.size == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    change = keys[1:] != keys[:-1]
    return np.r_[True, change], np.r_[change, True]


@dataclass(frozen=True, slots=True)
class FreshStats:
    users: int
    events: int
    evicted_users: int
    dropped_events: int
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    max_bytes: int = 0


class FreshEvents:
    """Per-user fresh events within ``max_bytes`` (see the module documentation).

    Each event is kept with its partition and offset so that a newer snapshot can drop exactly the
    events it covers.
    """

    def __init__(
        self,
        *,
        max_bytes: int = 256 << 20,
        max_per_user: int = 200,
        max_users: int | None = None,
    ) -> None:
        if max_per_user < 1 or max_bytes < 64 << 10 or (max_users is not None and max_users < 1):
            raise ValueError("max_per_user and max_users must be >= 1 and max_bytes >= 64 KiB")
        self.max_bytes = max_bytes
        self.max_per_user = max_per_user
        self.max_users = max_users
        self._lock = threading.Lock()
        self._users = Vocabulary()
        self._items = Vocabulary()
        self._head = np.zeros(0, np.int32)  # per user: newest event row, -1 if none
        self._count = np.zeros(0, np.int32)  # per user: events stored (may exceed the cap)
        self._active = np.zeros(0, np.int64)  # per user: tick of the last batch with an event
        self._tick = 0
        self._size = 0
        self._live_events = 0  # sum over users of min(count, max_per_user): kept for O(1) stats
        self._live_users = 0
        self._columns = self._allocate(_MIN_CAPACITY)
        self._evicted_users = 0
        self._dropped: dict[str, int] = {}

    @staticmethod
    def _allocate(capacity: int) -> dict[str, np.ndarray]:
        return {
            "user": np.zeros(capacity, np.int32),
            "item": np.zeros(capacity, np.int32),
            "weight": np.zeros(capacity, np.float32),
            "previous": np.zeros(capacity, np.int32),
            "partition": np.zeros(capacity, np.int16),
            "offset": np.zeros(capacity, np.int64),
        }

    @property
    def _capacity(self) -> int:
        return int(self._columns["user"].size)

    def _id_bytes(self) -> int:
        return (len(self._users) + len(self._items)) * ID_BYTES

    def _estimate(self) -> int:
        """Bytes the stored events and ids take (what the bound is enforced on)."""
        return self._size * EVENT_BYTES + self._id_bytes()

    def _count_drop(self, reason: DropReason, count: int) -> None:
        if count:
            self._dropped[reason] = self._dropped.get(reason, 0) + count

    # -- writing -------------------------------------------------------------------------------

    def add(self, batch: ParsedBatch, partitions: IntArray, offsets: IntArray) -> None:
        """Add the accepted events of ``batch`` (metadata arrays cover the accepted events)."""
        n = len(batch)
        if n == 0:
            return
        with self._lock:
            self._ensure_room(n)  # may compact, renumbering ids: before rows are looked up
            users = self._users.add(batch.user_keys)[batch.user_index]
            items = self._items.add(batch.item_keys)[batch.item_index]
            self._grow_users()
            base = self._size
            rows = np.arange(base, base + n, dtype=np.int64)
            # Link each event to the same user's previous one: within the batch, else the head.
            order = np.argsort(users, kind="stable")
            sorted_users = users[order]
            first, last = _group_edges(sorted_users)
            previous = np.empty(n, np.int64)
            previous[order[~first]] = rows[order[np.flatnonzero(~first) - 1]]
            previous[order[first]] = self._head[sorted_users[first]]
            cols = self._columns
            end = base + n
            cols["user"][base:end] = users
            cols["item"][base:end] = items
            cols["weight"][base:end] = batch.weights
            cols["previous"][base:end] = previous
            cols["partition"][base:end] = partitions
            cols["offset"][base:end] = offsets
            self._size = end
            touched = sorted_users[last]
            added = np.bincount(users, minlength=len(self._users))[touched].astype(np.int32)
            before = np.minimum(self._count[touched], self.max_per_user)
            self._head[touched] = rows[order[last]]
            self._count[touched] += added
            after = np.minimum(self._count[touched], self.max_per_user)
            self._count_drop("user_cap", int((before + added - after).sum()))
            self._live_events += int((after - before).sum())
            self._live_users += int((before == 0).sum())
            self._tick += 1
            self._active[touched] = self._tick
            self._enforce_bounds()

    def _grow_users(self) -> None:
        extra = len(self._users) - self._head.size
        if extra > 0:
            self._head = np.r_[self._head, np.full(extra, -1, np.int32)]
            self._count = np.r_[self._count, np.zeros(extra, np.int32)]
            self._active = np.r_[self._active, np.zeros(extra, np.int64)]

    def _ensure_room(self, n: int) -> None:
        """Room for ``n`` more rows: reclaim dead rows first, then grow (doubling) within the
        budget (a batch is never refused: the bounds are enforced right after it is added)."""
        if self._size + n <= self._capacity:
            return
        self._compact(np.ones(self._size, dtype=bool))
        needed = self._size + n
        if needed <= self._capacity:
            return
        limit = max(needed, (self.max_bytes - self._id_bytes()) // EVENT_BYTES)
        self._resize(min(max(needed, 2 * self._capacity), limit))

    def _resize(self, capacity: int) -> None:
        resized = self._allocate(capacity)
        for name, column in self._columns.items():
            resized[name][: self._size] = column[: self._size]
        self._columns = resized

    def _enforce_bounds(self) -> None:
        """Drop the least recently active users while over ``max_users``, or over ``max_bytes``
        (then down to 80 % of it, so that a full store does not compact on every batch)."""
        over_users = self.max_users is not None and self._live_users > self.max_users
        if not over_users and self._estimate() <= self.max_bytes:
            return
        stored = np.minimum(self._count, self.max_per_user).astype(np.int64)
        lru = np.argsort(self._active, kind="stable")
        lru = lru[stored[lru] > 0]
        remaining_users = self._live_users - np.arange(1, lru.size + 1)
        size_after = (self._live_events - np.cumsum(stored[lru])) * EVENT_BYTES + (
            remaining_users + len(self._items)
        ) * ID_BYTES
        fits = size_after <= int(0.8 * self.max_bytes)
        if self.max_users is not None:
            fits &= remaining_users <= self.max_users
        cut = int(np.argmax(fits)) + 1 if fits.any() else lru.size
        evicted = lru[:cut]
        self._evicted_users += int(evicted.size)
        self._count_drop("memory", int(stored[evicted].sum()))
        gone = np.zeros(self._head.size, dtype=bool)
        gone[evicted] = True
        self._compact(~gone[self._columns["user"][: self._size]])

    def _compact(self, keep: npt.NDArray[np.bool_]) -> None:
        """Keep the rows where ``keep`` (and within each user's newest ``max_per_user``), pack
        them, rebuild the per-user links, and forget users and items left with nothing."""
        size = self._size
        cols = self._columns
        users = cols["user"][:size].astype(np.int64)
        order = np.lexsort((-np.arange(size), users))  # per user, newest first
        sorted_users = users[order]
        starts = np.flatnonzero(_group_edges(sorted_users)[0])
        rank = np.arange(size) - np.repeat(starts, np.diff(np.r_[starts, size]))
        within_cap = np.empty(size, dtype=bool)
        within_cap[order] = rank < self.max_per_user
        rows = np.flatnonzero(keep & within_cap)
        for column in cols.values():
            column[: rows.size] = column[:size][rows]
        self._size = size = int(rows.size)
        # Forget ids nothing refers to, and renumber.
        user_live = np.zeros(len(self._users), dtype=bool)
        user_live[cols["user"][:size]] = True
        remap = self._users.compact(user_live)
        cols["user"][:size] = remap[cols["user"][:size]]
        self._active = self._active[user_live]
        item_live = np.zeros(len(self._items), dtype=bool)
        item_live[cols["item"][:size]] = True
        item_remap = self._items.compact(item_live)
        cols["item"][:size] = item_remap[cols["item"][:size]]
        # Relink: rows are in arrival order, so each user's previous row is the one before it.
        users = cols["user"][:size].astype(np.int64)
        order = np.argsort(users, kind="stable")
        sorted_users = users[order]
        first, last = _group_edges(sorted_users)
        previous = np.full(size, -1, np.int64)
        previous[order[~first]] = order[np.flatnonzero(~first) - 1]
        cols["previous"][:size] = previous
        n_users = len(self._users)
        self._head = np.full(n_users, -1, np.int32)
        self._head[sorted_users[last]] = order[last]
        self._count = np.bincount(users, minlength=n_users).astype(np.int32)
        self._live_events, self._live_users = size, int((self._count > 0).sum())
        if self._capacity > 4 * max(size, _MIN_CAPACITY):  # give memory back after a big drop
            self._resize(2 * max(size, _MIN_CAPACITY))

    # -- reading -------------------------------------------------------------------------------

    def events(self, user: str) -> list[tuple[str, float]]:
        """The user's fresh events as (item, weight), oldest first (at most ``max_per_user``)."""
        with self._lock:
            row = self._users.row(user)
            if row is None or row >= self._head.size:
                return []
            cols = self._columns
            previous, item, weight = cols["previous"], cols["item"], cols["weight"]
            found = []
            event = int(self._head[row])
            for _ in range(min(int(self._count[row]), self.max_per_user)):
                if event < 0:
                    break
                found.append(event)
                event = int(previous[event])
            found.reverse()
            ids = self._items.ids
            return [(ids[int(item[e])], float(weight[e])) for e in found]

    # -- a newer snapshot, a lost log ----------------------------------------------------------

    def drop_covered(self, positions: Mapping[int, int]) -> int:
        """Forget events a snapshot covers (offset below its next offset); returns how many."""
        with self._lock:
            return self._drop_where(self._covered(positions))

    def drop_partition(self, partition: int) -> int:
        """Forget every event of ``partition`` (its log was lost); returns how many."""
        with self._lock:
            gone = self._columns["partition"][: self._size] == partition
            dropped = self._drop_where(gone)
            self._count_drop("lost_log", dropped)
            return dropped

    def _covered(self, positions: Mapping[int, int]) -> npt.NDArray[np.bool_]:
        partitions = self._columns["partition"][: self._size].astype(np.int64)
        if partitions.size == 0:
            return np.zeros(0, dtype=bool)
        limits = np.zeros(int(partitions.max()) + 1, np.int64)
        for p, offset in positions.items():
            if 0 <= p < limits.size:
                limits[p] = offset
        return self._columns["offset"][: self._size] < limits[partitions]

    def _drop_where(self, gone: npt.NDArray[np.bool_]) -> int:
        if not gone.any():
            return 0
        before = self._live_events
        self._compact(~gone)
        return before - self._live_events

    def stats(self) -> FreshStats:
        """Counts and sizes (O(1): scraped by /metrics on the event loop)."""
        with self._lock:
            return FreshStats(
                users=self._live_users,
                events=self._live_events,
                evicted_users=self._evicted_users,
                dropped_events=sum(self._dropped.values()),
                dropped_by_reason=dict(self._dropped),
                bytes=self._capacity * EVENT_BYTES + self._id_bytes(),
                max_bytes=self.max_bytes,
            )
