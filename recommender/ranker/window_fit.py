"""Training the ranking stage on the builder's window, and deciding whether it serves.

Each user's newest ``cut_share`` of events are held out, as self-tuning holds them out
(:func:`recommender.tuning.validation.split`: in the window's order, time then offset; a bulk
load that says no time is a shuffle, see :mod:`recommender.timeorder`): the serving family is
fitted again on the rest, and its top ``candidates`` unseen items for each user with a new like
among their held-out events are the rows, labelled by those likes. No label is an event the
family learnt. (A single cut in time left almost no user on both sides of it where people come
in sessions: 1 of MovieLens' 610.) Item and user features are computed from the events trained
on, at their newest time, as the server computes them from the whole window when answering.
The ranker learns on 70 % of those users and is held against the family's own order on the
rest (NDCG@10, paired bootstrap): in ``auto`` it serves only when the interval's low end is
above zero.

Pure but for LightGBM: the builder calls it off the serving path, in its retrain thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..features import ItemInformation, ItemStats, UserStats, item_stats, user_stats
from ..models import FittedModel, Sequences, TrainingData, row_histories
from ..tuning.validation import split
from ..window import WindowEvents
from .candidates import CandidateTable, Context, candidate_table
from .training import Objective, RankerFit, fit_ranker

__all__ = [
    "CANDIDATES",
    "SOURCE",
    "RankerMode",
    "RankerOutcome",
    "WindowFeatures",
    "train_on_window",
    "window_features",
]

RankerMode = Literal["auto", "on", "off"]
#: Candidates ranked per request (the family's top items), in training and when answering.
CANDIDATES: Final = 200
#: The candidate source's name in the feature names (``candidates.score``, ``candidates.rank``).
SOURCE: Final = "candidates"
#: A model small enough to answer within the request's budget: LightGBM scores 200 rows with
#: 200 trees of 31 leaves in ~0.9 ms of one core, with 60 trees of 15 leaves in ~0.15 ms
#: (bench/ranking_stage.py); the features are few, and a ranker that is not good enough this
#: size is not adopted.
ROUNDS: Final = 60
LEAVES: Final = 15
LEARNING_RATE: Final = 0.1
_BATCH: Final = 256

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class WindowFeatures:
    """The item and user stats of a whole window (rows as the snapshot's), its newest time, and
    what the catalogue says of its items (None: no items topic, or nothing in it): what the
    server computes features from."""

    items: ItemStats
    users: UserStats
    newest_ms: int
    information: ItemInformation | None = None


def window_features(
    events: WindowEvents, information: ItemInformation | None = None
) -> WindowFeatures:
    """Stats of every item and user of the window, from all its events."""
    n_users, n_items = len(events.user_ids), len(events.item_ids)
    return WindowFeatures(
        item_stats(events.items, events.timestamps, events.weights, n_items),
        user_stats(events.users, events.timestamps, events.weights, n_users),
        int(events.timestamps.max()) if len(events) else 0,
        None if information is None or information.empty else information,
    )


@dataclass(frozen=True)
class RankerOutcome:
    """Whether the ranker serves, why, and what it was measured at (None: not trained)."""

    serve: bool
    reason: str
    fit: RankerFit | None = None
    candidates: int = CANDIDATES

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"serves": self.serve, "reason": self.reason}
        if self.fit is not None:
            fit = self.fit
            found.update(
                candidates=self.candidates,
                objective=fit.ranker.objective,
                ndcg_at_10={
                    "ranker": round(fit.ranker_ndcg, 5),
                    "first_stage": round(fit.first_stage_ndcg, 5),
                    "linear_blend": round(fit.blend_ndcg, 5),
                },
                against_first_stage=fit.comparison.to_dict(),
                against_linear_blend=fit.against_blend.to_dict(),
                recall_ceiling=round(fit.recall_ceiling, 4),
                rows=fit.rows,
                seconds=round(fit.seconds, 2),
                importances=dict(list(fit.ranker.importances().items())[:10]),
            )
        return found


def train_on_window(
    events: WindowEvents,
    fit_family: Callable[[TrainingData], FittedModel],
    *,
    mode: RankerMode = "auto",
    candidates: int = CANDIDATES,
    cut_share: float = 0.2,
    max_users: int = 2000,
    min_users: int = 100,
    objective: Objective = "lambdarank",
    seed: int = 0,
    information: ItemInformation | None = None,
) -> RankerOutcome:
    """Fit and judge a ranker on ``events`` (see the module docstring); ``fit_family`` fits the
    serving family's setting on a training matrix; ``information``: the catalogue's categories
    and attributes of the window's items (the category match and ``attr.*`` features)."""
    n_users, n_items = len(events.user_ids), len(events.item_ids)
    held = split(events, fraction=cut_share, seed=seed)
    train, truth = held.train, held.truth
    # users who liked something new in their newest events and had a history before them
    judged = np.flatnonzero((np.diff(truth.indptr) > 0) & (np.diff(train.indptr) > 0))
    if judged.size < min_users:
        return RankerOutcome(
            False,
            f"too few users to learn from: {judged.size} liked a new item in their newest "
            f"{cut_share:.0%} of the window after events before it (at least {min_users})",
        )
    rng = np.random.default_rng(seed)
    if judged.size > max_users:
        judged = np.sort(rng.choice(judged, max_users, replace=False))
    fitted = fit_family(held.data)
    past = ~held.is_validation
    stamps = events.timestamps[past]
    context = Context(
        item_stats(events.items[past], stamps, events.weights[past], n_items),
        user_stats(events.users[past], stamps, events.weights[past], n_users),
        int(stamps.max()),
        None if information is None or information.empty else information,
    )
    sequences = held.sequences
    table = _table(fitted, train, sequences, judged, context, candidates)
    fit = fit_ranker(
        table,
        truth[judged],
        first_stage=SOURCE,
        objective=objective,
        rounds=ROUNDS,
        leaves=LEAVES,
        learning_rate=LEARNING_RATE,
        seed=seed,
    )
    if mode == "on":
        return RankerOutcome(True, "--ranker on: serves whatever it measured", fit, candidates)
    comparison = fit.comparison
    if comparison.low > 0:
        reason = (
            f"beats the family's own order beyond the noise: NDCG@10 {fit.ranker_ndcg:.4f} vs "
            f"{fit.first_stage_ndcg:.4f} on {comparison.users} held-out users, difference "
            f"interval [{comparison.low:+.4f}, {comparison.high:+.4f}]"
        )
        return RankerOutcome(True, reason, fit, candidates)
    reason = (
        f"does not beat the family's own order beyond the noise: NDCG@10 {fit.ranker_ndcg:.4f} "
        f"vs {fit.first_stage_ndcg:.4f} on {comparison.users} held-out users, difference "
        f"interval [{comparison.low:+.4f}, {comparison.high:+.4f}]"
    )
    return RankerOutcome(False, reason, fit, candidates)


def _table(
    fitted: FittedModel,
    train: sp.csr_matrix,
    sequences: Sequences,
    users: IntArray,
    context: Context,
    candidates: int,
) -> CandidateTable:
    """The candidate table of ``users``, scored in batches (a batch's scores are users x
    items)."""
    parts: list[CandidateTable] = []
    for lo in range(0, users.size, _BATCH):
        chunk = users[lo : lo + _BATCH]
        histories = row_histories(train, chunk.tolist(), sequences)
        part = candidate_table(
            {SOURCE: fitted.score}, histories, chunk, context, per_source=candidates
        )
        parts.append(CandidateTable(part.user + lo, part.col, part.features, part.names))
    return CandidateTable(
        np.concatenate([p.user for p in parts]),
        np.concatenate([p.col for p in parts]),
        np.concatenate([p.features for p in parts]),
        parts[0].names,
    )
