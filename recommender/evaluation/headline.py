"""A protocol's headline: the model we tune against the strongest baseline that is not ALS.

Popularity and the seed's settings alone flatter ALS when an item-kNN beats both (cosine does
on MovieLens' per-user holdout), so the headline names the strongest non-ALS model, the ratio
and difference against it, the number of users, and, where the metric is a mean over users, the
paired bootstrap interval of the difference (:func:`recommender.user_metrics.paired_bootstrap`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..user_metrics import PairedComparison, paired_bootstrap
from .offline import ModelResult

__all__ = ["Headline", "compare_with_strongest", "strongest"]


@dataclass(frozen=True, slots=True)
class Headline:
    """``candidate`` against ``baseline`` by ``metric``; ``interval`` is None where the metric
    is not a mean over users (nothing to bootstrap)."""

    metric: str
    candidate: str
    baseline: str
    candidate_score: float
    baseline_score: float
    users: int
    interval: PairedComparison | None = None

    @property
    def difference(self) -> float:
        return self.candidate_score - self.baseline_score

    @property
    def ratio(self) -> float | None:
        return self.candidate_score / self.baseline_score if self.baseline_score > 0 else None

    @property
    def winner(self) -> str:
        """``candidate``, ``baseline`` or ``tie``, by the means (see ``clear`` for certainty)."""
        if self.difference > 0:
            return "candidate"
        return "baseline" if self.difference < 0 else "tie"

    @property
    def clear(self) -> bool | None:
        """Whether the interval excludes 0 (None without an interval)."""
        if self.interval is None:
            return None
        return self.interval.low > 0 or self.interval.high < 0

    def text(self, lead: str = "**Headline**") -> str:
        """One Markdown sentence, starting with ``lead``."""
        ratio = f"{self.ratio:.2f}x" if self.ratio is not None else "the baseline scores 0"
        spread = ""
        if self.interval is not None:
            c = self.interval
            spread = (
                f" ({c.confidence:.0%} paired bootstrap interval over users: {c.low:+.4f} to "
                f"{c.high:+.4f})"
            )
        if self.winner == "tie":
            verdict = f"**a tie**: {self.baseline} does as well as {self.candidate}"
        elif self.winner == "baseline":
            verdict = (
                f"**{self.baseline} scores higher** than {self.candidate}, but the interval "
                "includes 0: no clear winner"
                if self.clear is False
                else f"**a baseline wins**: {self.baseline} scores higher than {self.candidate}"
            )
        elif self.clear is False:
            verdict = f"{self.candidate} is ahead, but the interval includes 0: no clear winner"
        else:
            verdict = f"{self.candidate} beats it"
        if self.clear is True and self.winner != "tie":
            verdict += " (the interval excludes 0)"
        return (
            f"{lead} ({self.metric}, {self.users:,} test users): {self.candidate} "
            f"{self.candidate_score:.4f} vs the strongest non-ALS baseline, {self.baseline}, "
            f"{self.baseline_score:.4f}: {ratio}, {self.difference:+.4f}{spread}; {verdict}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "candidate_score": self.candidate_score,
            "baseline_score": self.baseline_score,
            "ratio": self.ratio,
            "difference": self.difference,
            "users": self.users,
            "winner": self.winner,
            "interval": None if self.interval is None else self.interval.to_dict(),
        }


def strongest(baselines: Sequence[ModelResult], k: int, metric: str = "ndcg") -> ModelResult:
    """The baseline with the highest ``metric``@k (the first listed on a tie)."""
    return max(baselines, key=lambda r: r.metrics[k][metric])


def compare_with_strongest(
    candidate: ModelResult,
    baselines: Sequence[ModelResult],
    k: int,
    *,
    label: str = "",
    seed: int = 0,
) -> Headline:
    """``candidate`` (called ``label`` in the text) against the strongest of ``baselines`` by
    NDCG@k, with a paired bootstrap over the test users (every model is scored on the same
    users, in the same order)."""
    best = strongest(baselines, k)
    mine, theirs = candidate.user_ndcg[k], best.user_ndcg[k]
    return Headline(
        metric=f"NDCG@{k}",
        candidate=label or candidate.name,
        baseline=best.name,
        candidate_score=candidate.metrics[k]["ndcg"],
        baseline_score=best.metrics[k]["ndcg"],
        users=int(np.isfinite(mine).sum()),
        interval=paired_bootstrap(mine, theirs, seed=seed),
    )
