"""What ``recommender evaluate`` is asked to do: the protocols and their settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["PROTOCOLS", "TITLES", "EvaluateOptions", "Protocol"]

Protocol = Literal["temporal", "global", "prequential", "seed"]
PROTOCOLS: tuple[Protocol, ...] = ("temporal", "global", "prequential", "seed")

#: Each protocol's section heading in the report.
TITLES: dict[Protocol, str] = {
    "temporal": "Per-user holdout",
    "global": "Global time cut-off",
    "prequential": "Prequential stream replay",
    "seed": "The seed's protocol",
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
    search_budget: float = 60.0
    #: Self-tuning budget of the "what the daemon serves" row (0: leave the row out).
    daemon_budget: float = 90.0
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

    @property
    def k0(self) -> int:
        """The cut-off of the headline metric: 10 when asked for, else the first k."""
        return 10 if 10 in self.ks else self.ks[0]
