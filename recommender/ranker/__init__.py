"""The learned ranking stage: candidates from several sources with features
(:mod:`.candidates`), a LightGBM model over them (:mod:`.model`), trained on a time split of the
window and judged against the first stage alone (:mod:`.training`). Pure: no Kafka, no aiohttp.
"""

from .candidates import CandidateTable, Context, Source, candidate_table, feature_names
from .model import LearnedRanker
from .training import (
    Objective,
    RankerFit,
    fit_ranker,
    labels_of,
    linear_blend,
    ndcg_of,
    top_by_score,
)

__all__ = [
    "CandidateTable",
    "Context",
    "LearnedRanker",
    "Objective",
    "RankerFit",
    "Source",
    "candidate_table",
    "feature_names",
    "fit_ranker",
    "labels_of",
    "linear_blend",
    "ndcg_of",
    "top_by_score",
]
