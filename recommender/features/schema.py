"""The ranker's feature schema: the names of its columns in order, and the value each takes when
it is unknown at answering time (the training median), stored as JSON in the snapshot."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_FEATURES", "FeatureSchema"]

#: Columns a ranker may have: families' scores and ranks, item, user and match features, and
#: 32 item attributes leave room to spare.
MAX_FEATURES: Final = 128
_NAME: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")


@dataclass(frozen=True)
class FeatureSchema:
    names: tuple[str, ...]
    defaults: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.defaults) or len(self.names) > MAX_FEATURES:
            raise ValueError(f"a schema has at most {MAX_FEATURES} names, one default each")
        if len(set(self.names)) != len(self.names) or not all(_NAME.match(n) for n in self.names):
            raise ValueError("feature names are distinct, 1-80 of letters, digits and _.:-")
        if not all(math.isfinite(d) for d in self.defaults):
            raise ValueError("feature defaults are finite numbers")

    @classmethod
    def with_medians(cls, names: Sequence[str], matrix: npt.NDArray[np.float32]) -> FeatureSchema:
        """A schema whose defaults are each column's median over its known (finite) values."""
        defaults = []
        for column in np.asarray(matrix, np.float64).T:
            known = column[np.isfinite(column)]
            defaults.append(float(np.median(known)) if known.size else 0.0)
        return cls(tuple(names), tuple(defaults))

    def fill(self, matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``matrix`` (rows x these columns) with unknown values (NaN, inf) set to the defaults:
        in place, and returned."""
        bad = ~np.isfinite(matrix)
        if bad.any():
            matrix[bad] = np.broadcast_to(np.asarray(self.defaults, np.float32), matrix.shape)[bad]
        return matrix

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "defaults": list(self.defaults)}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> FeatureSchema:
        names, defaults = document.get("names"), document.get("defaults")
        if not isinstance(names, list) or not isinstance(defaults, list):
            raise ValueError("a feature schema has the lists 'names' and 'defaults'")
        if not all(isinstance(n, str) for n in names):
            raise ValueError("feature names are strings")
        if not all(isinstance(d, int | float) and not isinstance(d, bool) for d in defaults):
            raise ValueError("feature defaults are numbers")
        return cls(tuple(names), tuple(float(d) for d in defaults))
