"""Explicit ratings as implicit-feedback weights: likes, dislikes and neutral ratings.

Implicit ALS reads a (user, item) weight w as a preference and a confidence: w > 0 means "liked",
with confidence alpha * w; w < 0 means "disliked" (preference 0) with confidence alpha * |w|,
stronger than the confidence 1 of an item never seen; w = 0 means "seen, no opinion": confidence 0,
the item is ignored by training but still counts as seen (never recommended back).

A :class:`RatingScale` maps a rating r on a declared scale LO..HI to such a weight:

    weight = r - (LO + HI) / 2      outside the middle fifth of the scale
    weight = 0                       inside it (a neutral rating)

so on ``1..5`` a 5 is +2, a 4 is +1, a 3 is neutral, a 2 is -1 and a 1 is -2; on ``1..10`` a 10 is
+4.5, 7 is +1.5, 5 and 6 are neutral, 4 is -1.5. The thresholds can be given instead:
``1..10:7:4`` makes 7 and above likes (7 -> +1, 10 -> +4) and 4 and below dislikes (4 -> -1,
1 -> -4). An event without a rating (``user:item``) is a plain interaction, weight 1.

Pure: numpy only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .errors import ConfigError

__all__ = ["RatingScale"]

_SPEC: Final = re.compile(
    r"^\s*(-?[\d.]+)\s*\.\.\s*(-?[\d.]+)\s*(?::\s*(-?[\d.]+)\s*:\s*(-?[\d.]+)\s*)?$"
)


@dataclass(frozen=True, slots=True)
class RatingScale:
    """Ratings from ``low`` to ``high``; ``like`` and above are likes, ``dislike`` and below are
    dislikes, anything between is neutral. With ``explicit`` thresholds the weight counts steps
    from the threshold (1 at the threshold); otherwise it is the distance from the midpoint."""

    low: float
    high: float
    like: float
    dislike: float
    explicit: bool = False

    def __post_init__(self) -> None:
        if not (np.isfinite([self.low, self.high, self.like, self.dislike]).all()):
            raise ConfigError("a rating scale needs finite numbers")
        if not self.low < self.high:
            raise ConfigError(f"rating scale {self.low:g}..{self.high:g}: low must be below high")
        if not self.low <= self.dislike < self.like <= self.high:
            raise ConfigError(f"rating scale {self.spec}: need low <= dislike < like <= high")

    @classmethod
    def parse(cls, spec: str) -> RatingScale:
        """``"1..5"`` (likes from 60 % of the range, dislikes up to 40 %) or ``"1..10:7:4"``."""
        match = _SPEC.match(spec)
        if match is None:
            raise ConfigError(
                f"--ratings {spec!r}: expected LOW..HIGH or LOW..HIGH:LIKE:DISLIKE, e.g. 1..5"
            )
        try:
            low, high = float(match.group(1)), float(match.group(2))
            if match.group(3) is not None:
                return cls(low, high, float(match.group(3)), float(match.group(4)), True)
        except ValueError:
            raise ConfigError(f"--ratings {spec!r}: not numbers") from None
        span = high - low
        return cls(low, high, low + 0.6 * span, low + 0.4 * span)

    @property
    def spec(self) -> str:
        base = f"{self.low:g}..{self.high:g}"
        return f"{base}:{self.like:g}:{self.dislike:g}" if self.explicit else base

    def weights(
        self, ratings: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Weights for ``ratings``, and which ratings lie on the scale (the others are invalid:
        their weight is 0 and must not be used)."""
        r = np.asarray(ratings, dtype=np.float64)
        valid = (r >= self.low) & (r <= self.high)  # NaN is invalid too
        if self.explicit:
            liked = r - self.like + 1.0
            disliked = r - self.dislike - 1.0
        else:
            middle = (self.low + self.high) / 2.0
            liked = disliked = r - middle
        out = np.where(r >= self.like, liked, np.where(r <= self.dislike, disliked, 0.0))
        return np.where(valid, out, 0.0), valid

    def weight(self, rating: float) -> float | None:
        """The weight of one rating, or None when it is off the scale."""
        w, valid = self.weights([rating])
        return float(w[0]) if bool(valid[0]) else None

    def describe(self) -> str:
        likes = ", ".join(
            f"{r:g} -> {w:+g}"
            for r in np.unique(np.r_[self.low, self.dislike, self.like, self.high])
            for w in [self.weights([r])[0][0]]
        )
        return f"ratings {self.spec} ({likes}; neutral between {self.dislike:g} and {self.like:g})"

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "low": self.low, "high": self.high,
                "like": self.like, "dislike": self.dislike, "explicit": self.explicit}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Any) -> RatingScale | None:
        """The scale a manifest records, or None (also for a malformed record)."""
        if not isinstance(data, dict) or not isinstance(data.get("spec"), str):
            return None
        try:
            return cls.parse(data["spec"])
        except ConfigError:
            return None
