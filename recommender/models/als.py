"""Implicit-feedback ALS (implicit's ``AlternatingLeastSquares``) behind the family protocol.

The fit is :func:`.als_training.train_als`, unchanged; a history is answered with the
user's trained factors (known user, nothing fresh) or a fold-in (the ALS user step against the
item factors, :class:`~recommender.models.foldin.FoldIn`), scored against the item factors. ALS is a
*latent* family: users and items share a space, so top items can come from an HNSW graph over
the item factors, and users have vectors (``/similar-users``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final, Literal

import numpy as np

from .als_training import AlsParams, TrainedFactors, check_factors, solve_users, train_als
from .base import (
    MAX_FACTOR,
    ArraySpec,
    Cost,
    FittedModel,
    FloatArray,
    History,
    IntArray,
    ModelFamily,
    TrainingData,
)
from .foldin import FoldIn, solve_symmetric

__all__ = ["AlsFamily", "AlsModel", "LatentModel"]

_TUNABLE: Final = ("factors", "regularization", "alpha", "iterations")


class LatentModel(FittedModel):
    """A family whose answers are ``vector · item_vector``: the server finds top items through
    ``item_vectors`` (exactly, or with a graph) and scores batches as one matrix product."""

    has_user_vectors: ClassVar[bool] = True
    item_vectors: FloatArray
    user_vectors: FloatArray

    def vectors(self, histories: Sequence[History]) -> tuple[FloatArray, np.ndarray]:
        """One vector per history, and which histories have one (the others: popularity)."""
        width = self.item_vectors.shape[1]
        out = np.zeros((len(histories), width), np.float32)
        ok = np.zeros(len(histories), bool)
        for k, history in enumerate(histories):
            vector = self.vector(history)
            if vector is not None:
                out[k], ok[k] = vector, True
        return out, ok

    def vector(self, history: History) -> FloatArray | None:
        """The history's vector (None: nothing to go on, or no finite solution)."""
        raise NotImplementedError

    def score(self, histories: Sequence[History]) -> FloatArray:
        vectors, _ = self.vectors(histories)
        return np.ascontiguousarray(vectors @ np.asarray(self.item_vectors).T, dtype=np.float32)

    def similar_items(self, col: int, n: int) -> tuple[IntArray, FloatArray]:
        """Cosine of the item vectors."""
        items = self.item_vectors
        norms = self._item_norms()
        scores = np.asarray(items @ items[col], dtype=np.float32)
        scores /= np.maximum(norms * max(float(norms[col]), 1e-12), 1e-12)
        scores[col] = -np.inf
        return _top(scores, n)

    def similar_users(self, row: int, n: int) -> tuple[IntArray, FloatArray]:
        """Cosine of the user vectors (``row`` itself left out)."""
        users = self.user_vectors
        if getattr(self, "_user_norms", None) is None:
            self._user_norms = np.linalg.norm(users, axis=1).astype(np.float32)
        norms = self._user_norms
        scores = np.asarray(users @ users[row], dtype=np.float32)
        scores /= np.maximum(norms * max(float(norms[row]), 1e-12), 1e-12)
        scores[row] = -np.inf
        return _top(scores, n)

    def _item_norms(self) -> FloatArray:
        if getattr(self, "_norms", None) is None:
            self._norms = np.linalg.norm(self.item_vectors, axis=1).astype(np.float32)
        return self._norms


def _top(scores: FloatArray, n: int) -> tuple[IntArray, FloatArray]:
    """The ``n`` best finite scores, best first."""
    size = scores.size
    n = min(n, size)
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    top = np.argpartition(scores, size - n)[size - n :] if n < size else np.arange(size)
    top = top[np.argsort(-scores[top], kind="stable")]
    top = top[np.isfinite(scores[top])].astype(np.int64)
    return top, scores[top]


class AlsModel(LatentModel):
    """Trained ALS factors, with the fold-in every answer of a history needs."""

    family: ClassVar[str] = "als"
    ARRAYS: ClassVar[Mapping[str, ArraySpec]] = {
        "user_factors": ArraySpec("float32", 2),
        "item_factors": ArraySpec("float32", 2),
    }

    def __init__(
        self, user_factors: FloatArray, item_factors: FloatArray, params: Mapping[str, Any]
    ) -> None:
        super().__init__(params, int(item_factors.shape[0]))
        self.user_factors = self.user_vectors = user_factors
        self.item_factors = self.item_vectors = item_factors
        self.alpha = float(params.get("alpha", 1.0))
        self.regularization = float(params.get("regularization", 0.0))
        # What every fold-in shares (ALS's YᵀY + λI), computed once per model.
        self.folding = FoldIn(item_factors, alpha=self.alpha, regularization=self.regularization)

    def vector(self, history: History) -> FloatArray | None:
        if history.row is not None and not history.fresh:
            return np.asarray(self.user_factors[history.row], dtype=np.float32)
        found = self.folding.vector(history.cols, history.weights, priority=history.priority)
        if found is None and history.row is not None:
            return np.asarray(self.user_factors[history.row], dtype=np.float32)
        return found

    def explain(self, history: History, col: int, n: int) -> tuple[float, IntArray, FloatArray]:
        """As implicit's ``explain``: score = Σ_j c_j · y_colᵀ A⁻¹ y_j, A the user's
        normal-equation matrix; dislikes and neutral events contribute nothing."""
        cols, weights = history.cols, history.weights
        a, _ = self.folding.system(cols, weights)
        y = np.asarray(self.item_factors[cols], dtype=np.float64)
        wanted = np.asarray(self.item_factors[col], np.float64)
        target = solve_symmetric(a, wanted)
        if target is None:  # no finite A⁻¹: plain similarity of the factors
            target = wanted
        contributions = self.alpha * np.maximum(weights.astype(np.float64), 0.0) * (y @ target)
        order = np.argsort(-contributions, kind="stable")[:n]
        return (
            float(contributions.sum()),
            cols[order].astype(np.int64),
            contributions[order].astype(np.float32),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any], n_items: int
    ) -> AlsModel:
        return cls(arrays["user_factors"], arrays["item_factors"], params)

    @classmethod
    def check_arrays(
        cls, arrays: Mapping[str, np.ndarray], n_users: int, n_items: int
    ) -> list[str]:
        users, items = arrays["user_factors"], arrays["item_factors"]
        problems = []
        if users.shape[0] != n_users or items.shape[0] != n_items:
            problems.append("factor rows do not match the users and items")
        if users.shape[1] != items.shape[1]:
            problems.append("factor shapes disagree")
        for name, factors in (("user", users), ("item", items)):
            if factors.size and not bool(np.all(np.abs(factors) <= MAX_FACTOR)):  # NaN fails
                problems.append(f"{name} factors are not finite numbers below {MAX_FACTOR:g}")
        return problems

    @classmethod
    def from_trained(cls, trained: TrainedFactors, params: AlsParams) -> AlsModel:
        return cls(trained.user_factors, trained.item_factors, params.to_dict())


class AlsFamily(ModelFamily):
    """ALS: ``fit`` is :func:`~recommender.models.als_training.train_als` (on the CPU or a GPU)."""

    name: ClassVar[str] = "als"

    def __init__(self, *, device: Literal["cpu", "gpu"] = "cpu") -> None:
        self.device = device

    def defaults(self) -> dict[str, Any]:
        return AlsParams().to_dict()

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        known = {k: v for k, v in params.items() if k in (*_TUNABLE, "random_seed")}
        return AlsParams(**known).to_dict()

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {
            "factors": trial.suggest_int("als_factors", 8, 192, log=True),
            "regularization": trial.suggest_float("als_regularization", 1e-3, 100.0, log=True),
            "alpha": trial.suggest_float("als_alpha", 0.1, 100.0, log=True),
            "iterations": trial.suggest_int("als_iterations", 5, 25, log=True),
        }

    def cost(self, n_users: int, n_items: int, nnz: int, params: Mapping[str, Any]) -> Cost:
        factors = int(params.get("factors", 64))
        iterations = int(params.get("iterations", 15))
        # Factors (float32, and implicit's float64 work copies), the matrix and its transpose.
        memory = (n_users + n_items) * factors * 12 + nnz * 24
        # Measured: 1M events (~0.5M pairs) at 64 factors x 15 iterations in about 4 s on 2 cores.
        seconds = 4.0 * (nnz / 5e5) * (factors / 64) ** 1.5 * (iterations / 15) + 0.05
        return Cost(int(memory), float(seconds))

    def fit(
        self,
        data: TrainingData,
        params: Mapping[str, Any],
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> AlsModel:
        settings = AlsParams(**self.validate(params))
        trained = train_als(data.user_items, settings, should_stop=should_stop, device=self.device)
        return AlsModel.from_trained(trained, settings)

    def refit(
        self,
        model: FittedModel,
        data: TrainingData,
        params: Mapping[str, Any],
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> AlsModel:
        """One ALS user step on ``data`` against ``model``'s item factors: every user, the
        held-out events included, solved again; the items stay as fitted."""
        assert isinstance(model, AlsModel)
        settings = AlsParams(**self.validate(params))
        users = solve_users(model.item_factors, data.user_items, settings)
        check_factors(users, model.item_factors, data.shape)
        return AlsModel(users, model.item_factors, settings.to_dict())
