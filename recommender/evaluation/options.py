"""What ``recommender evaluate`` is asked to do: the protocols and their settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["LAST_NOTE", "PROTOCOLS", "TITLES", "EvaluateOptions", "Protocol"]

Protocol = Literal["temporal", "last", "global", "prequential", "seed"]
PROTOCOLS: tuple[Protocol, ...] = ("temporal", "last", "global", "prequential", "seed")

#: Each protocol's section heading in the report.
TITLES: dict[Protocol, str] = {
    "temporal": "Per-user holdout",
    "last": "Leave-last-out by time",
    "global": "Global time cut-off",
    "prequential": "Prequential stream replay",
    "seed": "The seed's protocol",
}

#: What the leave-last-out section says about itself.
LAST_NOTE = (
    "The question a session asks: what comes next. Full ranking over the catalogue (no sampled "
    "negatives); one held-out item per user, so intervals are wide on small sets. Ratings "
    "files often order a user's events by the interface that collected them rather than by "
    "taste (MovieLens users rate in bursts), which favours models of order more than live "
    "traffic may."
)


#: Scaled budgets: (training events per second of search, fewest seconds, most seconds).
_SCALED: dict[str, tuple[float, float, float]] = {
    "search": (1000.0, 10.0, 60.0),
    "daemon": (700.0, 15.0, 90.0),
    "family": (4000.0, 5.0, 20.0),
}


@dataclass(frozen=True, kw_only=True)
class EvaluateOptions:
    data_file: Path
    output_dir: Path
    protocols: Sequence[Protocol] = ("temporal",)
    ks: Sequence[int] = (10,)
    min_rating: float | None = None
    #: Map weights through this rating scale (likes, neutral, dislikes), as the builder's
    #: --ratings does; models then learn from the weights instead of one per pair.
    ratings: str | None = None
    test_fraction: float = 0.2
    cutoff: float = 0.9
    #: Seconds of the ALS search (None: scaled with the data, see :meth:`budget`).
    search_budget: float | None = None
    #: Self-tuning budget of the "what the daemon serves" row (0: leave the row out).
    daemon_budget: float | None = None
    #: Self-tuning budget of each model family's row (0: no family rows).
    family_budget: float | None = None
    #: A first look: every scaled budget a quarter as long.
    quick: bool = False
    #: A row for the learned ranking stage over the daemon's family (or tuned ALS).
    ranker: bool = True
    windows: Sequence[int] = (5000, 20000, 0)
    retrain_every: Sequence[int] = (1000, 5000)
    #: Prequential half-lives (seconds of event time) to compare with the plain window.
    half_lives: Sequence[float] = ()
    seed: int = 42
    #: An exposure log (JSON lines): the live-quality figures for it and the data file.
    exposures: Path | None = None
    attribution_window: float = 1800.0
    plots: bool = True
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def budget(self, name: Literal["search", "daemon", "family"], events: int) -> float:
        """The seconds of one search: as given, else grown with the training events (a small
        file does not need the minutes a large one does) within the bounds below."""
        given = {
            "search": self.search_budget,
            "daemon": self.daemon_budget,
            "family": self.family_budget,
        }[name]
        if given is not None:
            return given
        per_second, low, high = _SCALED[name]
        seconds = min(high, max(low, events / per_second))
        return round(seconds / 4 if self.quick else seconds, 1)

    @property
    def k0(self) -> int:
        """The cut-off of the headline metric: 10 when asked for, else the first k."""
        return 10 if 10 in self.ks else self.ks[0]
