"""The sliding window of the latest interactions, and its user x item matrix.

Pure data structure: no Kafka, no I/O. Events are kept in arrival order in a fixed-capacity ring
of numpy arrays (30 bytes an event: user row, item row, weight, timestamp, partition, offset).
The window holds at most ``max_events`` events (a count window) and, if ``max_age_ms`` is set, only
events whose timestamp is within ``max_age_ms`` of the newest timestamp seen (event time, so a
replay or a restart rebuilds exactly the same window whatever the wall clock says).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .events import ParsedBatch
from .vocab import Vocabulary

__all__ = ["InteractionWindow", "WindowMatrix"]

_NO_TIME = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class WindowMatrix:
    """What a retrain needs from the window, with compact rows and columns.

    Attributes
    ----------
    user_items : scipy.sparse.csr_matrix, float32, users x items
        Summed weights of every (user, item) pair in the window.
    user_ids, item_ids : list of str
        External id of each row / column.
    popularity : ndarray of int64
        Number of events per item in the window.
    recent_popularity : ndarray of float32
        Events per item weighted by recency: an event counts 2^(-age / h), its age measured from
        the newest event and h a quarter of the window's time span (all 1 when the span is 0).
    events : int
        Number of events in the window.
    min_timestamp_ms, max_timestamp_ms : int or None
        Time span of the window's events.
    partition_starts : dict of int to int
        For each partition with events in the window, the offset of its oldest event there.
    holdout_users, holdout_items : ndarray of int64
        Rows and columns of the newest ``holdout`` events (see :meth:`InteractionWindow.matrix`).
    train_items : scipy.sparse.csr_matrix or None
        ``user_items`` without the holdout events (None when there is no holdout).
    """

    user_items: sp.csr_matrix
    user_ids: list[str]
    item_ids: list[str]
    popularity: npt.NDArray[np.int64]
    recent_popularity: npt.NDArray[np.float32]
    events: int
    min_timestamp_ms: int | None
    max_timestamp_ms: int | None
    partition_starts: dict[int, int]
    holdout_users: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    holdout_items: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    train_items: sp.csr_matrix | None = None


def _recent_popularity(
    ts: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], n_items: int
) -> npt.NDArray[np.float32]:
    if ts.size == 0:
        return np.zeros(n_items, np.float32)
    newest, span = int(ts.max()), int(ts.max() - ts.min())
    half_life = span / 4 if span > 0 else 1.0
    decay = np.exp2(-(newest - ts) / half_life)
    return np.bincount(cols, weights=decay, minlength=n_items).astype(np.float32)


class InteractionWindow:
    """A count- and optionally time-bounded window of interactions.

    Parameters
    ----------
    max_events : int
        Capacity: the newest ``max_events`` events are kept.
    max_age_ms : int, optional
        If given, events older than the newest timestamp minus ``max_age_ms`` are dropped.
    """

    def __init__(self, max_events: int, *, max_age_ms: int | None = None) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if max_age_ms is not None and max_age_ms <= 0:
            raise ValueError("max_age_ms must be positive")
        self.max_events = max_events
        self.max_age_ms = max_age_ms
        self.users = Vocabulary()
        self.items = Vocabulary()
        self._user = np.zeros(max_events, dtype=np.int32)
        self._item = np.zeros(max_events, dtype=np.int32)
        self._weight = np.zeros(max_events, dtype=np.float32)
        self._ts = np.zeros(max_events, dtype=np.int64)
        self._partition = np.zeros(max_events, dtype=np.int16)
        self._offset = np.zeros(max_events, dtype=np.int64)
        self._head = 0  # ring position of the oldest event
        self._size = 0
        self._newest_ts = _NO_TIME

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the event arrays (not counting the id vocabularies)."""
        arrays = (self._user, self._item, self._weight, self._ts, self._partition, self._offset)
        return sum(a.nbytes for a in arrays)

    @property
    def newest_timestamp_ms(self) -> int | None:
        return None if self._newest_ts == _NO_TIME else int(self._newest_ts)

    def append(
        self,
        batch: ParsedBatch,
        *,
        timestamps_ms: npt.NDArray[np.int64],
        partitions: npt.NDArray[np.integer],
        offsets: npt.NDArray[np.int64],
    ) -> None:
        """Add the accepted events of ``batch``; the metadata arrays cover the accepted events."""
        n = len(batch)
        if not (timestamps_ms.size == partitions.size == offsets.size == n):
            raise ValueError("metadata arrays must have one entry per accepted event")
        if n == 0:
            return
        user_rows = self.users.add(batch.user_keys)[batch.user_index]
        item_rows = self.items.add(batch.item_keys)[batch.item_index]
        columns: list[np.ndarray] = [
            user_rows,
            item_rows,
            batch.weights,
            timestamps_ms,
            partitions,
            offsets,
        ]
        if n > self.max_events:  # only the newest max_events can survive anyway
            columns = [c[-self.max_events :] for c in columns]
            n = self.max_events
        cap = self.max_events
        tail = (self._head + self._size) % cap
        first = min(n, cap - tail)
        for store, values in zip(self._stores(), columns, strict=True):
            store[tail : tail + first] = values[:first]
            store[: n - first] = values[first:]
        overflow = max(0, self._size + n - cap)
        self._head = (self._head + overflow) % cap
        self._size = min(cap, self._size + n)
        self._newest_ts = max(self._newest_ts, int(timestamps_ms.max()))
        self._expire_head()

    def _stores(self) -> tuple[np.ndarray, ...]:
        return (self._user, self._item, self._weight, self._ts, self._partition, self._offset)

    def _cutoff(self) -> int:
        if self.max_age_ms is None or self._newest_ts == _NO_TIME:
            return _NO_TIME
        return int(self._newest_ts - self.max_age_ms)

    def _expire_head(self) -> None:
        """Drop expired events from the oldest end (stragglers are masked in :meth:`matrix`)."""
        cutoff = self._cutoff()
        if cutoff == _NO_TIME or self._size == 0:
            return
        ts = self._live(self._ts)
        fresh = ts >= cutoff
        expired = int(np.argmax(fresh)) if fresh.any() else self._size
        self._head = (self._head + expired) % self.max_events
        self._size -= expired

    def _live(self, store: np.ndarray) -> np.ndarray:
        """The live events of one column, oldest first (a view when the ring does not wrap)."""
        end = self._head + self._size
        if end <= self.max_events:
            return store[self._head : end]
        return np.concatenate((store[self._head :], store[: end - self.max_events]))

    def matrix(self, *, holdout: int = 0) -> WindowMatrix:
        """The window as a compact user x item matrix plus what a snapshot records about it.

        With ``holdout`` > 0, the newest ``holdout`` events are also given apart, with the matrix
        of all the others, for judging a model on events it did not learn from.
        """
        users, items = self._live(self._user), self._live(self._item)
        weights, ts = self._live(self._weight), self._live(self._ts)
        partitions, offsets = self._live(self._partition), self._live(self._offset)
        cutoff = self._cutoff()
        if cutoff != _NO_TIME:
            keep = ts >= cutoff
            if not keep.all():
                users, items, weights = users[keep], items[keep], weights[keep]
                ts, partitions, offsets = ts[keep], partitions[keep], offsets[keep]
        user_rows, user_col = np.unique(users, return_inverse=True)
        item_rows, item_col = np.unique(items, return_inverse=True)
        shape = (user_rows.size, item_rows.size)
        user_items = sp.csr_matrix(
            (weights.astype(np.float32), (user_col.ravel(), item_col.ravel())), shape=shape
        )
        user_items.sum_duplicates()
        train_items = None
        holdout_users = holdout_items = np.zeros(0, np.int64)
        if 0 < holdout < users.size:
            rows, cols = user_col.ravel(), item_col.ravel()
            train_items = sp.csr_matrix(
                (weights[:-holdout].astype(np.float32), (rows[:-holdout], cols[:-holdout])),
                shape=shape,
            )
            train_items.sum_duplicates()
            holdout_users = rows[-holdout:].astype(np.int64)
            holdout_items = cols[-holdout:].astype(np.int64)
        starts: dict[int, int] = {}
        if partitions.size:
            order = np.lexsort((offsets, partitions))
            first = np.flatnonzero(np.r_[True, np.diff(partitions[order]) != 0])
            starts = {
                int(p): int(o)
                for p, o in zip(partitions[order][first], offsets[order][first], strict=True)
            }
        user_ids, item_ids = self.users.ids, self.items.ids
        return WindowMatrix(
            user_items=user_items,
            user_ids=[user_ids[r] for r in user_rows.tolist()],
            item_ids=[item_ids[r] for r in item_rows.tolist()],
            popularity=np.bincount(item_col.ravel(), minlength=item_rows.size).astype(np.int64),
            recent_popularity=_recent_popularity(ts, item_col.ravel(), item_rows.size),
            events=int(users.size),
            min_timestamp_ms=int(ts.min()) if ts.size else None,
            max_timestamp_ms=int(ts.max()) if ts.size else None,
            partition_starts=starts,
            holdout_users=holdout_users,
            holdout_items=holdout_items,
            train_items=train_items,
        )

    def compact_vocabularies(self, *, slack: float = 2.0, minimum: int = 1024) -> bool:
        """Forget ids no live event refers to, once they outnumber live ids ``slack`` to one.

        Keeps memory bounded on a stream whose ids keep changing. Returns whether it compacted.
        """
        changed = False
        for vocab, store in ((self.users, self._user), (self.items, self._item)):
            live = np.zeros(len(vocab), dtype=bool)
            live[self._live(store)] = True
            n_live = int(live.sum())
            if len(vocab) <= max(minimum, slack * n_live):
                continue
            remap = vocab.compact(live)
            store[:] = remap[store]  # slots outside the live region become -1: unused
            changed = True
        return changed
