"""What the daemon itself would serve for a training set: its defaults, self-tuned within its
budget exactly as the builder tunes its window (:func:`recommender.tuning.tune`)."""

from __future__ import annotations

import numpy as np

from ..models import Setting
from ..models.als_training import AlsParams
from ..tuning import SearchSpace, TuningOutcome, tune
from ..window import WindowEvents
from .data import Interactions

__all__ = ["daemon_settings", "window_events"]


def window_events(data: Interactions, *, binary: bool = True, seed: int = 42) -> WindowEvents:
    """``data`` as the builder's window would hold it. Event time: the data's timestamps; a file
    without any (sorted by user and item, like the anime files) gets a seeded shuffle, as a
    replay into Kafka would (its order must not make "a user's newest events" their highest item
    ids)."""
    stamps = (
        np.random.default_rng(seed).permutation(len(data)).astype(np.int64)
        if data.timestamps is None
        else data.timestamps.astype(np.int64) * 1000
    )
    weights = np.ones(len(data), np.float32) if binary else data.weights.astype(np.float32)
    return WindowEvents(
        data.users.astype(np.int64),
        data.items.astype(np.int64),
        weights,
        stamps,
        list(data.user_ids),
        list(data.item_ids),
    )


def daemon_settings(
    train: Interactions,
    *,
    budget_seconds: float,
    binary: bool = True,
    seed: int = 42,
    families: tuple[str, ...] = ("als",),
) -> tuple[Setting, TuningOutcome]:
    """The setting the builder would serve after its first tuning session on ``train`` (it
    starts with ALS's defaults and searches ``families``)."""
    defaults = Setting("als", AlsParams(random_seed=seed).to_dict())
    outcome = tune(
        window_events(train, binary=binary, seed=seed),
        current=defaults,
        space=SearchSpace(families=families),
        budget_seconds=budget_seconds,
        seed=seed,
    )
    return (outcome.best if outcome.adopted else defaults), outcome
