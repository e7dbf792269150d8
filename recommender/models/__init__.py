"""Model families behind one protocol (:mod:`.base`): fit on a window, score histories, similar
items, explain, snapshot arrays. Pure: no Kafka, no aiohttp."""

from __future__ import annotations

from .base import (
    MAX_RECENT,
    ArraySpec,
    Cost,
    FittedModel,
    History,
    ModelFamily,
    Sequences,
    TrainingData,
)

__all__ = [
    "MAX_RECENT",
    "ArraySpec",
    "Cost",
    "FittedModel",
    "History",
    "ModelFamily",
    "Sequences",
    "TrainingData",
]
