"""A learned ranker: a LightGBM model over the candidate table's features, kept as LightGBM's own
model text with its feature schema (no pickle), so a snapshot can carry it as arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..features import FeatureSchema

__all__ = ["LearnedRanker"]

FloatArray = npt.NDArray[np.float32]


class LearnedRanker:
    """Scores candidate rows (higher is better); unknown values take the schema's defaults."""

    #: Snapshot arrays: the model text as UTF-8 bytes.
    ARRAYS = ("ranker_model",)

    def __init__(self, model_text: str, schema: FeatureSchema, objective: str) -> None:
        import lightgbm  # imported here: the ranker is optional at answering time

        self.booster = lightgbm.Booster(model_str=model_text)
        if self.booster.num_feature() != len(schema.names):
            raise ValueError(
                f"the ranker has {self.booster.num_feature()} features, its schema "
                f"{len(schema.names)}"
            )
        self.model_text = model_text
        self.schema = schema
        self.objective = objective

    def score(self, features: FloatArray) -> npt.NDArray[np.float64]:
        filled = self.schema.fill(np.array(features, np.float32, copy=True))
        return np.asarray(self.booster.predict(filled, num_threads=1), np.float64)

    def contributions(self, features: FloatArray) -> npt.NDArray[np.float64]:
        """Each feature's contribution to each row's score (LightGBM's SHAP values), rows x
        (features + 1: the last column is the expected value)."""
        filled = self.schema.fill(np.array(features, np.float32, copy=True))
        return np.asarray(self.booster.predict(filled, pred_contrib=True, num_threads=1))

    def importances(self) -> dict[str, float]:
        """Each feature's share of the total gain of the model's splits, largest first."""
        gains = np.asarray(self.booster.feature_importance(importance_type="gain"), np.float64)
        total = gains.sum() or 1.0
        pairs = sorted(zip(self.schema.names, gains / total, strict=True), key=lambda p: -p[1])
        return {name: round(float(share), 4) for name, share in pairs}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"ranker_model": np.frombuffer(self.model_text.encode("utf-8"), np.uint8)}

    def describe(self) -> dict[str, Any]:
        """The manifest's part: objective and schema (the model text travels as an array)."""
        return {"objective": self.objective, "schema": self.schema.to_dict()}

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], description: Mapping[str, Any]
    ) -> LearnedRanker:
        text = np.asarray(arrays["ranker_model"], np.uint8).tobytes().decode("utf-8")
        schema = FeatureSchema.from_dict(description["schema"])
        return cls(text, schema, str(description.get("objective", "lambdarank")))
