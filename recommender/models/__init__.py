"""Model families behind one protocol (:mod:`.base`): fit on a window, score histories, similar
items, explain, snapshot arrays. Pure: no Kafka, no aiohttp.

:data:`FAMILIES` names every family; a snapshot's manifest says which one made it
(``model.family``; snapshots from before families are ALS).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .als import AlsFamily, AlsModel, LatentModel
from .base import (
    MAX_FACTOR,
    MAX_RECENT,
    ArraySpec,
    Cost,
    FittedModel,
    History,
    ModelFamily,
    Sequences,
    Setting,
    TrainingData,
    row_histories,
)
from .ease import EaseFamily, EaseModel
from .knn import KnnFamily, KnnModel
from .rp3beta import Rp3BetaFamily, Rp3BetaModel
from .sequence import SequenceFamily, SequenceModel

__all__ = [
    "ALIASES",
    "FAMILIES",
    "MAX_FACTOR",
    "MAX_RECENT",
    "AlsFamily",
    "AlsModel",
    "ArraySpec",
    "Cost",
    "FittedModel",
    "History",
    "LatentModel",
    "ModelFamily",
    "Sequences",
    "Setting",
    "TrainingData",
    "family_of",
    "make_family",
    "model_class",
    "row_histories",
]

#: Every family, by name: its trainer and its fitted model's class.
FAMILIES: dict[str, tuple[type[ModelFamily], type[FittedModel]]] = {
    "als": (AlsFamily, AlsModel),
    "ease": (EaseFamily, EaseModel),
    "rp3beta": (Rp3BetaFamily, Rp3BetaModel),
    "knn": (KnnFamily, KnnModel),
    "sequence": (SequenceFamily, SequenceModel),
}
#: Other names operators may use for a family (``--model seq``).
ALIASES: dict[str, str] = {"seq": "sequence", "item-knn": "knn", "rp3": "rp3beta"}


def family_of(manifest: Mapping[str, Any]) -> str:
    """The family a manifest's model belongs to (``als`` for snapshots from before families)."""
    section = manifest.get("model")
    if isinstance(section, Mapping) and isinstance(section.get("family"), str):
        return str(section["family"])
    return "als"


def make_family(name: str, **options: Any) -> ModelFamily:
    """A trainer of family ``name`` (ALS takes ``device``; others ignore what they lack)."""
    cls = FAMILIES[name][0]
    if cls is AlsFamily:
        return AlsFamily(**options)
    return cls()


def model_class(family: str) -> type[FittedModel]:
    """The fitted-model class of ``family`` (KeyError: unknown)."""
    return FAMILIES[family][1]
