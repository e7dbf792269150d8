"""Fit implicit-feedback ALS on a window matrix, and check the result before anyone serves it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..blas import limit_blas_threads
from ..errors import ConfigError, TrainingAborted, TrainingError

__all__ = [
    "AlsParams",
    "Device",
    "TrainedFactors",
    "check_factors",
    "gpu_available",
    "resolve_device",
    "solve_users",
    "train_als",
]

log = logging.getLogger(__name__)

#: Where ALS is fitted: ``auto`` picks the GPU when implicit can use one (CUDA and RMM).
Device = Literal["auto", "cpu", "gpu"]


def gpu_available() -> bool:
    """Whether implicit can train on a GPU here (its CUDA extension, RMM and a device)."""
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "CUDA extension is built, but ..." on CPU machines
            import implicit.gpu
    except ImportError:
        return False
    return bool(implicit.gpu.HAS_CUDA and implicit.gpu.HAS_RMM)


def resolve_device(device: Device) -> Literal["cpu", "gpu"]:
    """``auto`` -> the GPU if available, else the CPU; ``gpu`` without one is an error."""
    if device == "cpu":
        return "cpu"
    if gpu_available():
        return "gpu"
    if device == "gpu":
        raise ConfigError(
            "--device gpu: implicit cannot use a GPU here (it needs an NVIDIA GPU, CUDA and the "
            "rmm package, e.g. pip install rmm-cu13); use --device auto or cpu"
        )
    return "cpu"


@dataclass(frozen=True, slots=True)
class AlsParams:
    """ALS hyper-parameters.

    Attributes
    ----------
    factors : int
        Latent dimensions.
    regularization : float
        L2 penalty on the factors.
    alpha : float
        Confidence scaling: confidence = alpha * summed weight of the (user, item) pair.
    iterations : int
        Alternating sweeps.
    random_seed : int
        Seed of the initial factors, so a retrain on the same window is reproducible.
    """

    # Chosen across every data set we have (bench/tuning.py --part defaults, EVALUATION.md): the
    # best worst case, 92 % of each set's best validation NDCG (64, 0.05, 1 was as low as 53 %).
    factors: int = 64
    regularization: float = 32.0
    alpha: float = 4.0
    iterations: int = 15
    random_seed: int = 42

    def __post_init__(self) -> None:
        if self.factors < 1 or self.iterations < 1:
            raise ValueError("factors and iterations must be at least 1")
        if not (self.regularization >= 0 and np.isfinite(self.regularization)):
            raise ValueError("regularization must be a finite number >= 0")
        if not (self.alpha > 0 and np.isfinite(self.alpha)):
            raise ValueError("alpha must be a finite number > 0")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TrainedFactors:
    """The outcome of one fit: factor matrices aligned with the window matrix's rows/columns."""

    user_factors: npt.NDArray[np.float32]
    item_factors: npt.NDArray[np.float32]
    seconds: float


def train_als(
    user_items: sp.csr_matrix,
    params: AlsParams,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    num_threads: int = 0,
    after_iteration: Callable[[int, TrainedFactors], None] | None = None,
    device: Literal["cpu", "gpu"] = "cpu",
) -> TrainedFactors:
    """Fit ALS on a users x items matrix of summed weights.

    Parameters
    ----------
    user_items : scipy.sparse.csr_matrix
        What to learn from (e.g. ``WindowMatrix.user_items``); must hold at least one event.
    params : AlsParams
        Hyper-parameters.
    should_stop : callable
        Polled after every iteration; when it returns True the fit is abandoned.
    num_threads : int
        OpenMP threads for implicit on the CPU (0: all cores).
    device : "cpu" or "gpu"
        Where to fit (see :func:`resolve_device`); the factors come back as numpy arrays.
    after_iteration : callable, optional
        Called with the iteration number (from 1) and the factors so far (not copied: read
        them, do not keep them); it may raise :class:`TrainingAborted` to stop early.

    Raises
    ------
    TrainingAborted
        ``should_stop`` asked to stop.
    TrainingError
        The window is empty or the factors are not finite.
    """
    if user_items.nnz == 0:
        raise TrainingError("the window is empty: nothing to train on")
    if device == "gpu" and after_iteration is not None:
        raise ValueError("after_iteration reads the factors on the CPU: not with device='gpu'")
    model = _als(params, num_threads) if device == "cpu" else _gpu_als(params)

    def on_iteration(iteration: int, elapsed: float, loss: float) -> None:
        if should_stop():
            raise TrainingAborted(f"stopped after iteration {iteration + 1}")
        if after_iteration is not None:
            after_iteration(
                iteration + 1,
                TrainedFactors(
                    model.user_factors, model.item_factors, time.perf_counter() - started
                ),
            )

    started = time.perf_counter()
    try:
        model.fit(user_items, show_progress=False, callback=on_iteration)
    except TrainingError:
        raise
    except Exception as exc:  # implicit raises plain exceptions; keep the cause
        raise TrainingError(f"ALS fit failed: {exc}") from exc
    seconds = time.perf_counter() - started
    if device == "gpu":
        model = model.to_cpu()
    user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
    item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    check_factors(user_factors, item_factors, user_items.shape)
    return TrainedFactors(user_factors, item_factors, seconds)


def _als(params: AlsParams, num_threads: int = 0) -> Any:
    from implicit.cpu.als import AlternatingLeastSquares  # heavy import, only where needed

    limit_blas_threads()
    return AlternatingLeastSquares(**_als_arguments(params), num_threads=num_threads)


def _gpu_als(params: AlsParams) -> Any:
    from implicit.gpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(**_als_arguments(params))


def _als_arguments(params: AlsParams) -> dict[str, Any]:
    return {
        "factors": params.factors,
        "regularization": params.regularization,
        "alpha": params.alpha,
        "iterations": params.iterations,
        "random_state": params.random_seed,
    }


def solve_users(
    item_factors: npt.NDArray[np.float32], user_items: sp.csr_matrix, params: AlsParams
) -> npt.NDArray[np.float32]:
    """ALS's user step for every row of ``user_items`` against fixed item factors."""
    model = _als(params)
    model.item_factors = np.array(item_factors, dtype=np.float32)  # implicit needs it writable
    users = np.arange(user_items.shape[0])
    return np.ascontiguousarray(model.recalculate_user(users, user_items), dtype=np.float32)


def check_factors(
    user_factors: npt.NDArray[np.float32],
    item_factors: npt.NDArray[np.float32],
    shape: tuple[int, int],
) -> None:
    """Raise :class:`TrainingError` unless the factors fit a users x items ``shape`` and are all
    finite."""
    n_users, n_items = shape
    if user_factors.shape[0] != n_users or item_factors.shape[0] != n_items:
        raise TrainingError(
            f"factor shapes {user_factors.shape}/{item_factors.shape} "
            f"do not match the window's {n_users} users x {n_items} items"
        )
    if user_factors.shape[1] != item_factors.shape[1]:
        raise TrainingError("user and item factors have different widths")
    from .base import MAX_FACTOR

    for factors in (user_factors, item_factors):
        if factors.size and not bool(np.all(np.abs(factors) <= MAX_FACTOR)):  # NaN fails too
            raise TrainingError(f"ALS produced non-finite factors (or beyond {MAX_FACTOR:g})")
