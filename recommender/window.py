"""The sliding window of the latest interactions, and its user x item matrix.

Pure data structure: no Kafka, no I/O. The window is *the newest* ``max_events`` *events by event
time* among everything appended (and, if ``max_age_ms`` is set, only events within ``max_age_ms``
of the newest timestamp seen). "Newest" orders events by (timestamp, offset, partition), a total
order that does not depend on the order Kafka happened to deliver partitions in: a builder that
read one partition to its end before starting the next, and one that read them evenly, hold the
same window; so does a restarted builder that re-read each partition from its window start.

Storage: unordered numpy columns (30 bytes an event: user row, item row, weight, timestamp,
partition, offset) with 25 % slack. When the slack is used up, one selection (``np.partition``,
linear time) keeps the newest ``max_events``; so appending costs amortised O(1) per event and
memory stays under 40 bytes an event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .events import ParsedBatch
from .models.data import Sequences, TrainingData, pair_matrix, recent_sequences
from .timeorder import OrderCheck, check_order
from .vocab import Vocabulary

__all__ = ["InteractionWindow", "WindowEvents", "WindowMatrix", "pair_matrix", "recent_sequences"]

_NO_TIME = np.iinfo(np.int64).min
#: The most an event at the window's newest time is multiplied by under a half-life.
MAX_NEWEST_WEIGHT = 1000.0
IntArray = npt.NDArray[np.int64]


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
        Number of positive events (not dislikes, not neutral ratings) per item in the window.
    recent_popularity : ndarray of float32
        Positive events per item weighted by recency: an event counts 2^(-age / h), its age
        measured from the newest event and h a quarter of the window's time span (all 1 when the
        span is 0).
    events : int
        Number of events in the window.
    min_timestamp_ms, max_timestamp_ms : int or None
        Time span of the window's events.
    partition_starts : dict of int to int
        For each partition with events in the window, the offset of its oldest event there.
    holdout_users, holdout_items : ndarray of int64
        Rows and columns of the held-out events, oldest first (see
        :meth:`InteractionWindow.matrix`).
    holdout_weights : ndarray of float32
        Their weights (a dislike is held out too, but is nothing to find).
    train_items : scipy.sparse.csr_matrix or None
        ``user_items`` without the holdout events (None when there is no holdout).
    newest_weight : float
        With a half-life, what an event's weight is multiplied by at the window's newest time
        (1 / the mean decay); 1 without one. The server scales fresh events by it.
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
    holdout_weights: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros(0, np.float32)
    )
    train_items: sp.csr_matrix | None = None
    newest_weight: float = 1.0
    #: Per user row, the newest liked items in event-time order (see models.Sequences); and
    #: the same without the held-out events (None when there is no holdout).
    sequences: Sequences | None = None
    train_sequences: Sequences | None = None
    #: Whether the window's order says time (when not, ``sequences`` are in a shuffle).
    order: OrderCheck | None = None

    def training_data(self, *, holdout: bool = False) -> TrainingData:
        """What a model family fits on: everything, or (``holdout``) all but the holdout."""
        if holdout:
            assert self.train_items is not None
            return TrainingData(
                self.train_items, self.train_sequences or Sequences.empty(len(self.user_ids))
            )
        return TrainingData(self.user_items, self.sequences or Sequences.empty(len(self.user_ids)))


@dataclass(frozen=True, slots=True)
class WindowEvents:
    """A copy of the window's events (for self-tuning, which splits them by time per user).

    ``users`` and ``items`` index ``user_ids`` and ``item_ids``; ``weights`` are as training sees
    them (after the half-life decay, before pairs are summed and capped).
    """

    users: npt.NDArray[np.int64]
    items: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float32]
    timestamps: npt.NDArray[np.int64]
    user_ids: list[str]
    item_ids: list[str]
    #: Each event's rank in the window's order (time, then offset in its partition): what
    #: breaks ties in time (a burst produced within one millisecond); None: ties are unordered.
    order: npt.NDArray[np.int64] | None = None
    #: False: the window's order says nothing of time (a bulk load sorted by item id, see
    #: :mod:`.timeorder`): ``order`` is a shuffle, and timestamps order nothing either.
    timed: bool = True

    def __len__(self) -> int:
        return int(self.users.size)


def _recent_popularity(
    ts: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], n_items: int
) -> npt.NDArray[np.float32]:
    if ts.size == 0:
        return np.zeros(n_items, np.float32)
    newest, span = int(ts.max()), int(ts.max() - ts.min())
    half_life = span / 4 if span > 0 else 1.0
    decay = np.exp2(-(newest - ts) / half_life)
    return np.bincount(cols, weights=decay, minlength=n_items).astype(np.float32)


def _newest(ts: IntArray, offsets: IntArray, partitions: npt.NDArray[np.int16], n: int) -> IntArray:
    """Indices of the ``n`` newest events by (timestamp, offset, partition), in linear time."""
    size = ts.size
    if n >= size:
        return np.arange(size)
    if n <= 0:
        return np.zeros(0, np.int64)
    threshold = np.partition(ts, size - n)[size - n]
    above = np.flatnonzero(ts > threshold)
    tied = np.flatnonzero(ts == threshold)
    need = n - above.size
    if need < tied.size:  # break ties by offset, then partition (rare: equal timestamps)
        order = np.lexsort((partitions[tied], offsets[tied]))
        tied = tied[order[tied.size - need :]]
    return np.sort(np.concatenate((above, tied)))


class InteractionWindow:
    """The newest ``max_events`` interactions by event time, optionally also bounded by age.

    Parameters
    ----------
    max_events : int
        The newest ``max_events`` events are kept.
    max_age_ms : int, optional
        If given, events older than the newest timestamp minus ``max_age_ms`` are dropped.
    half_life_ms : int, optional
        If given, an event's weight decays by half every ``half_life_ms`` of age (measured from
        the newest event in the window, in event time) before pairs are summed.
    """

    def __init__(
        self,
        max_events: int,
        *,
        max_age_ms: int | None = None,
        half_life_ms: int | None = None,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if max_age_ms is not None and max_age_ms <= 0:
            raise ValueError("max_age_ms must be positive")
        if half_life_ms is not None and half_life_ms <= 0:
            raise ValueError("half_life_ms must be positive")
        self.max_events = max_events
        self.max_age_ms = max_age_ms
        self.half_life_ms = half_life_ms
        self.users = Vocabulary()
        self.items = Vocabulary()
        capacity = max_events + max(max_events // 4, 16)
        self._user = np.zeros(capacity, dtype=np.int32)
        self._item = np.zeros(capacity, dtype=np.int32)
        self._weight = np.zeros(capacity, dtype=np.float32)
        self._ts = np.zeros(capacity, dtype=np.int64)
        self._partition = np.zeros(capacity, dtype=np.int16)
        self._offset = np.zeros(capacity, dtype=np.int64)
        self._size = 0  # columns [0, _size) hold events; at most max_events of them are "in"
        self._newest_ts = _NO_TIME
        #: Whether the window's order said time when it was last trained on (see
        #: :mod:`.timeorder`); None before.
        self.order_check: OrderCheck | None = None

    def __len__(self) -> int:
        """Events in the window."""
        self._select()
        return self._size

    @property
    def capacity(self) -> int:
        return int(self._ts.size)

    @property
    def nbytes(self) -> int:
        """Bytes held by the event arrays (not counting the id vocabularies)."""
        return sum(a.nbytes for a in self._stores())

    @property
    def newest_timestamp_ms(self) -> int | None:
        return None if self._newest_ts == _NO_TIME else int(self._newest_ts)

    def _stores(self) -> tuple[np.ndarray, ...]:
        return (self._user, self._item, self._weight, self._ts, self._partition, self._offset)

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
        columns: list[np.ndarray] = [
            self.users.add(batch.user_keys)[batch.user_index],
            self.items.add(batch.item_keys)[batch.item_index],
            batch.weights,
            np.asarray(timestamps_ms, dtype=np.int64),
            np.asarray(partitions, dtype=np.int16),
            np.asarray(offsets, dtype=np.int64),
        ]
        self._newest_ts = max(self._newest_ts, int(columns[3].max()))
        room = self.capacity - self.max_events
        for lo in range(0, n, room):  # the slack takes at most ``room`` events between selections
            chunk = [c[lo : lo + room] for c in columns]
            if self._size + chunk[0].size > self.capacity:
                self._select()
            end = self._size + chunk[0].size
            for store, values in zip(self._stores(), chunk, strict=True):
                store[self._size : end] = values
            self._size = end

    def _cutoff(self) -> int:
        if self.max_age_ms is None or self._newest_ts == _NO_TIME:
            return _NO_TIME
        return int(self._newest_ts - self.max_age_ms)

    def _keep(self, index: np.ndarray) -> None:
        """Keep the events at ``index`` (ascending), packed at the front."""
        for store in self._stores():
            store[: index.size] = store[: self._size][index]
        self._size = int(index.size)

    def _select(self) -> None:
        """Drop expired events and all but the newest ``max_events``."""
        size = self._size
        ts = self._ts[:size]
        cutoff = self._cutoff()
        if cutoff != _NO_TIME and size and int(ts.min()) < cutoff:
            self._keep(np.flatnonzero(ts >= cutoff))
            size, ts = self._size, self._ts[: self._size]
        if size > self.max_events:
            self._keep(_newest(ts, self._offset[:size], self._partition[:size], self.max_events))

    def drop_partition(self, partition: int) -> int:
        """Forget every event of ``partition`` (its log was lost); returns how many."""
        self._select()
        gone = self._partition[: self._size] == partition
        count = int(gone.sum())
        if count:
            self._keep(np.flatnonzero(~gone))
        return count

    def matrix(
        self, *, holdout_from: Mapping[int, int] | None = None, max_holdout: int = 0
    ) -> WindowMatrix:
        """The window as a compact user x item matrix plus what a snapshot records about it.

        Parameters
        ----------
        holdout_from : mapping of partition to offset, optional
            Events at or after these offsets (every event of a partition not listed) are
            candidates for holding out: e.g. the events a serving model has not seen. The newest
            ``max_holdout`` of them are given apart, oldest first, with the matrix of all the
            others, for judging a model on events it did not learn from.
        max_holdout : int
            The most events held out.
        """
        self._select()
        size = self._size
        users, items = self._user[:size], self._item[:size]
        weights, ts = self._weight[:size], self._ts[:size]
        partitions, offsets = self._partition[:size], self._offset[:size]
        user_rows, user_col = np.unique(users, return_inverse=True)
        item_rows, item_col = np.unique(items, return_inverse=True)
        rows, cols = user_col.ravel(), item_col.ravel()
        shape = (user_rows.size, item_rows.size)
        liked = weights > 0
        weights, newest_weight = self._decayed(weights, ts)
        user_items = pair_matrix(rows, cols, weights, shape)
        train_items = None
        train_sequences = None
        order = self._order(rows, cols, ts)
        zeros = np.zeros(size, np.int64)
        keys = (zeros, order, zeros)  # the window's order (time, then offset), or a shuffle
        holdout_users = holdout_items = np.zeros(0, np.int64)
        holdout_weights = np.zeros(0, np.float32)
        if holdout_from is not None and max_holdout > 0 and size:
            limits = np.zeros(int(partitions.max()) + 1, dtype=np.int64)
            for p, offset in holdout_from.items():
                if 0 <= p < limits.size:
                    limits[p] = offset
            candidates = np.flatnonzero(offsets >= limits[partitions])
            if 0 < candidates.size < size:
                chosen = candidates[
                    _newest(
                        ts[candidates], offsets[candidates], partitions[candidates], max_holdout
                    )
                ]
                # In event-time order: the gate replays each user's held-out events as they came.
                chosen = chosen[np.lexsort((partitions[chosen], offsets[chosen], ts[chosen]))]
                train = np.ones(size, dtype=bool)
                train[chosen] = False
                train_items = pair_matrix(rows[train], cols[train], weights[train], shape)
                train_sequences = recent_sequences(rows, cols, keys, liked & train, user_rows.size)
                holdout_users = rows[chosen].astype(np.int64)
                holdout_items = cols[chosen].astype(np.int64)
                holdout_weights = self._weight[:size][chosen].astype(np.float32)
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
            popularity=np.bincount(cols[liked], minlength=item_rows.size).astype(np.int64),
            recent_popularity=_recent_popularity(ts[liked], cols[liked], item_rows.size),
            events=int(size),
            min_timestamp_ms=int(ts.min()) if ts.size else None,
            max_timestamp_ms=int(ts.max()) if ts.size else None,
            partition_starts=starts,
            holdout_users=holdout_users,
            holdout_items=holdout_items,
            holdout_weights=holdout_weights,
            train_items=train_items,
            newest_weight=newest_weight,
            sequences=recent_sequences(rows, cols, keys, liked, user_rows.size),
            train_sequences=train_sequences,
            order=self.order_check,
        )

    def _decayed(
        self, weights: npt.NDArray[np.float32], ts: IntArray
    ) -> tuple[npt.NDArray[np.float32], float]:
        """Weights decayed by age, and the multiplier an event at the newest time gets."""
        if self.half_life_ms is None or not ts.size:
            return weights, 1.0
        # Relative to the window's mean: a half-life shifts the emphasis to recent events
        # without shrinking the evidence (ALS's confidence is alpha x weight; decaying every
        # weight below 1 cut recall by 3 to 5 times on both streams in EVALUATION.md). Capped so
        # a window many half-lives long cannot blow the newest weights up.
        decay = np.exp2(-(int(ts.max()) - ts) / self.half_life_ms)
        newest_weight = float(1.0 / max(float(decay.mean()), 1.0 / MAX_NEWEST_WEIGHT))
        return (weights * (decay * newest_weight)).astype(np.float32), newest_weight

    def events(self) -> WindowEvents:
        """A copy of the events in the window, with compact id rows."""
        self._select()
        size = self._size
        ts = self._ts[:size].copy()
        weights, _ = self._decayed(self._weight[:size].astype(np.float32), ts)
        user_rows, users = np.unique(self._user[:size], return_inverse=True)
        item_rows, items = np.unique(self._item[:size], return_inverse=True)
        users, items = users.ravel().astype(np.int64), items.ravel().astype(np.int64)
        item_ids = [self.items.ids[r] for r in item_rows.tolist()]
        order = self._order(users, items, ts)
        return WindowEvents(
            users,
            items,
            weights,
            ts,
            [self.users.ids[r] for r in user_rows.tolist()],
            item_ids,
            order,
            timed=bool(self.order_check is None or self.order_check.says_time),
        )

    def _order(self, users: np.ndarray, items: np.ndarray, ts: np.ndarray) -> npt.NDArray[np.int64]:
        """Each event's rank in the window's order (time, then offset), or, when that order says
        no time (:mod:`.timeorder`), in a seeded shuffle; ``order_check`` says which."""
        size = self._size
        order = np.empty(size, np.int64)
        order[np.lexsort((self._partition[:size], self._offset[:size], ts))] = np.arange(size)
        self.order_check = check_order(users, items, ts, order)
        if not self.order_check.says_time:
            order = np.random.default_rng(0).permutation(size).astype(np.int64)
        return order

    def compact_vocabularies(self, *, slack: float = 2.0, minimum: int = 1024) -> bool:
        """Forget ids no event in the window refers to, once they outnumber live ids ``slack``
        to one. Keeps memory bounded on a stream whose ids keep changing. Returns whether it
        compacted."""
        self._select()
        changed = False
        for vocab, store in ((self.users, self._user), (self.items, self._item)):
            live = np.zeros(len(vocab), dtype=bool)
            live[store[: self._size]] = True
            n_live = int(live.sum())
            if len(vocab) <= max(minimum, slack * n_live):
                continue
            remap = vocab.compact(live)
            store[: self._size] = remap[store[: self._size]]
            changed = True
        return changed
