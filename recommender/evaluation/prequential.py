"""Prequential (test-then-learn) evaluation of the streaming system, after Vinagre, Jorge and
Gama (2014): replay events in time order through the same window, retrain and fold-in code the
daemons run, and before each event is learned ask for that user's top-N and record whether the
event's item is in it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..events import format_event, parse_values
from ..models.als_training import AlsParams, train_als
from ..serving.model import RecommenderModel
from ..snapshot import snapshot_arrays, snapshot_in_memory
from ..window import InteractionWindow
from .data import Interactions

__all__ = ["PrequentialResult", "replay_order", "run_prequential"]


@dataclass(frozen=True, slots=True)
class PrequentialResult:
    window_events: int
    retrain_every: int
    n: int
    hits: npt.NDArray[np.bool_]  # per scored event, in stream order
    scored_from: int  # events before the first model are not scored
    retrains: int
    train_seconds: float

    @property
    def recall(self) -> float:
        return float(self.hits.mean()) if self.hits.size else 0.0

    def curve(self, bins: int = 20) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(event position, recall@N) over consecutive slices of the stream."""
        if self.hits.size == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        edges = np.linspace(0, self.hits.size, bins + 1).astype(np.int64)
        centres = self.scored_from + (edges[:-1] + edges[1:]) // 2
        values = np.array(
            [self.hits[a:b].mean() if b > a else np.nan for a, b in itertools.pairwise(edges)]
        )
        return centres, values


def replay_order(data: Interactions, seed: int = 42) -> npt.NDArray[np.int64]:
    """Time order (stable); a seeded shuffle when the data has no timestamps."""
    if data.timestamps is None:
        return np.random.default_rng(seed).permutation(len(data))
    return np.argsort(data.timestamps, kind="stable")


def run_prequential(
    data: Interactions,
    *,
    window_events: int,
    retrain_every: int,
    params: AlsParams,
    n: int = 10,
    seed: int = 42,
    half_life_ms: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> PrequentialResult:
    """Replay ``data`` and score every event against the model a live system would have had.

    With ``half_life_ms``, the window decays event weights by event time (the data's timestamps,
    in seconds, when it has them; else one millisecond per event), as ``--half-life`` does."""
    order = replay_order(data, seed)
    users = [data.user_ids[u] for u in data.users[order].tolist()]
    items = [data.item_ids[i] for i in data.items[order].tolist()]
    stamps = (
        np.arange(len(order), dtype=np.int64)
        if data.timestamps is None
        else data.timestamps[order].astype(np.int64) * 1000
    )
    window = InteractionWindow(window_events, half_life_ms=half_life_ms)
    fresh: dict[str, list[tuple[str, float]]] = {}
    pending: list[bytes] = []
    model: RecommenderModel | None = None
    hits: list[bool] = []
    scored_from = len(order)
    retrains, train_seconds = 0, 0.0
    # Events count as implicit feedback (weight 1), as in the offline protocols.
    for t, (user, item) in enumerate(zip(users, items, strict=True)):
        if model is not None:
            answer = model.recommend(user, n, fresh=fresh.get(user, ()))
            hits.append(any(s.item == item for s in answer.items))
            scored_from = min(scored_from, t)
        fresh.setdefault(user, []).append((item, 1.0))
        pending.append(format_event(user, item, 1.0))
        if len(pending) >= retrain_every:
            batch = parse_values(pending)
            count = len(batch)
            window.append(
                batch,
                timestamps_ms=stamps[t - count + 1 : t + 1],
                partitions=np.zeros(count, np.int64),
                offsets=np.arange(t - count + 1, t + 1, dtype=np.int64),
            )
            matrix = window.matrix()
            started = time.perf_counter()
            factors = train_als(matrix.user_items, params)
            train_seconds += time.perf_counter() - started
            retrains += 1
            model = RecommenderModel(
                snapshot_in_memory(
                    retrains,
                    snapshot_arrays(matrix, factors),
                    # As the builder publishes it: fresh events weigh what the newest do.
                    {"params": params.to_dict(), "window": {"newest_weight": matrix.newest_weight}},
                    matrix.user_ids,
                    matrix.item_ids,
                )
            )
            fresh, pending = {}, []
            if progress is not None:
                progress(count)
    if progress is not None and pending:
        progress(len(pending))
    return PrequentialResult(
        window_events,
        retrain_every,
        n,
        np.array(hits, dtype=bool),
        scored_from if hits else 0,
        retrains,
        train_seconds,
    )
