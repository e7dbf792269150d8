"""Self-tuning: model families and their settings searched on the builder's own window, a setting
adopted on evidence (see :mod:`.search`)."""

from .search import TrialRecord, TuningOutcome, tune
from .space import TUNABLE, SearchSpace
from .validation import ValidationSplit, per_user_ndcg, split

__all__ = [
    "TUNABLE",
    "SearchSpace",
    "TrialRecord",
    "TuningOutcome",
    "ValidationSplit",
    "per_user_ndcg",
    "split",
    "tune",
]
