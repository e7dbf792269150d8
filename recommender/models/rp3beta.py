"""RP3beta (Paudel et al. 2017, as in Dacrema et al.'s reproducibility study): a three-step
random walk item -> user -> item, each step's probabilities raised to ``alpha``, the arrival
item's probability divided by its popularity to the power ``beta``; the top K per item kept.

    W[i, j] = sum_u P(u | i)**alpha * P(j | u)**alpha / popularity(j)**beta

Pure: numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .base import Cost, FittedModel, ModelFamily, TrainingData
from .neighbours import likes_to_learn, product_cost, product_top_k
from .params import complete, flag, integer, number
from .similarity import SimilarityModel

__all__ = ["Rp3BetaFamily", "Rp3BetaModel", "rp3beta_neighbours"]


def _row_stochastic(matrix: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Each row divided by its sum (a transition probability), then raised to ``alpha``."""
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    inverse = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    out = sp.csr_matrix(matrix.multiply(inverse[:, None]), dtype=np.float32)
    if alpha != 1.0:
        out.data **= np.float32(alpha)
    return out


def rp3beta_neighbours(
    liked: sp.csr_matrix,
    *,
    alpha: float,
    beta: float,
    k: int,
    should_stop: Callable[[], bool] = lambda: False,
) -> sp.csr_matrix:
    """The RP3beta item graph of a users x items matrix of likes (top ``k`` per item)."""
    user_to_item = _row_stochastic(liked, alpha)
    seen = liked.T.tocsr()
    seen.data[:] = 1.0
    item_to_user = _row_stochastic(seen, alpha)
    popularity = np.diff(seen.indptr).astype(np.float64)
    penalty = np.divide(1.0, popularity**beta, out=np.zeros_like(popularity), where=popularity > 0)
    return product_top_k(
        item_to_user, user_to_item, k, column_scale=penalty, should_stop=should_stop
    )


class Rp3BetaModel(SimilarityModel):
    family = "rp3beta"


class Rp3BetaFamily(ModelFamily):
    """RP3beta: ``rp3beta_alpha``, ``rp3beta_beta``, ``rp3beta_neighbours``."""

    name = "rp3beta"
    # Chosen across every data set (bench/families.py --part defaults, EVALUATION-families.md):
    # the best worst case, 84 % of a validation split's best grid point (200 neighbours: 76 %).
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "rp3beta_alpha": 0.6,
        "rp3beta_beta": 0.6,
        "rp3beta_neighbours": 500,
        "rp3beta_binary": True,
    }

    def defaults(self) -> dict[str, Any]:
        return dict(self.DEFAULTS)

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out = complete(self.name, params, self.DEFAULTS)
        number(out, "rp3beta_alpha", 0.0, 3.0)
        number(out, "rp3beta_beta", 0.0, 2.0)
        integer(out, "rp3beta_neighbours", 1, 10_000)
        flag(out, "rp3beta_binary")
        return out

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {
            "rp3beta_alpha": trial.suggest_float("rp3beta_alpha", 0.2, 1.5),
            "rp3beta_beta": trial.suggest_float("rp3beta_beta", 0.0, 1.0),
            "rp3beta_neighbours": trial.suggest_int("rp3beta_neighbours", 10, 1000, log=True),
        }

    def cost(self, n_users: int, n_items: int, nnz: int, params: Mapping[str, Any]) -> Cost:
        k = int(self.validate(params)["rp3beta_neighbours"])
        return product_cost(n_users, n_items, nnz, k)

    def fit(
        self,
        data: TrainingData,
        params: Mapping[str, Any],
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> FittedModel:
        settings = self.validate(params)
        liked = likes_to_learn(data.user_items, binary=settings["rp3beta_binary"], family="RP3beta")
        similarity = rp3beta_neighbours(
            liked,
            alpha=settings["rp3beta_alpha"],
            beta=settings["rp3beta_beta"],
            k=settings["rp3beta_neighbours"],
            should_stop=should_stop,
        )
        return Rp3BetaModel(settings, data.shape[1], similarity)
