"""One small protocol for every model family (as implicit's ``RecommenderBase``).

A *family* (:class:`ModelFamily`) fits a :class:`FittedModel` on a window; a fitted model scores
items for *histories* (a user's window items and fresh events, or an anonymous session: every
answer is computed from a history at request time, so a fresh event counts at once), finds
similar items, explains a score, and turns itself into named arrays for a snapshot and back.

Pure: numpy and scipy only (no Kafka, no aiohttp, no files).

Conventions every family honours, as ALS does:

- Weights are the window's summed pair weights (ratings already mapped by the scale, time decay
  already applied, each pair capped at +/-1000): a positive weight is a like with that strength,
  a negative one a dislike, 0 a neutral event (seen, no preference).
- A dislike must never raise the scores of the items it resembles; a neutral event changes no
  score. (Seen, disliked and excluded items are filtered by the caller, not here.)
- ``score`` returns a fresh float32 array the caller may modify; higher is better; every value
  finite. Items no history says anything about may all share one score (e.g. 0).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt

from .data import MAX_RECENT, Sequences, TrainingData

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = [
    "MAX_FACTOR",
    "MAX_RECENT",
    "ArraySpec",
    "Cost",
    "FittedModel",
    "History",
    "ModelFamily",
    "Sequences",
    "Setting",
    "TrainingData",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: Largest magnitude of any float a family stores (factors, similarities, weights): scores of
#: values this size still fit float32 comfortably, so no score can overflow to infinity.
MAX_FACTOR = 1e6


class ArraySpec(NamedTuple):
    """The dtype and number of dimensions a snapshot array of a family must have."""

    dtype: str
    ndim: int


class Cost(NamedTuple):
    """What a fit is expected to take, before it starts (for budgets and the tuner)."""

    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class History:
    """What is known of one user or session when answering.

    Attributes
    ----------
    cols : ndarray of int64
        Distinct item columns (window and fresh events together).
    weights : ndarray of float32
        Their summed weights (see the module docstring), aligned with ``cols``.
    recent : ndarray of int64
        Columns of the newest liked events in time order, oldest first (at most MAX_RECENT;
        the window's sequence followed by fresh events). Empty when order is unknown.
    row : int or None
        The user's row in the fitted window, when the model knows the user (families with
        trained user vectors may use it when there are no fresh events).
    fresh : bool
        Whether any of it is newer than the model (a family with trained user vectors must then
        compute from the history, not from the stored vector).
    priority : ndarray of int64
        Columns of the fresh events: kept first should a family have to truncate a very long
        history (the server bounds the work one request may cost).
    """

    cols: IntArray
    weights: FloatArray
    recent: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    row: int | None = None
    fresh: bool = False
    priority: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def empty(self) -> bool:
        return self.cols.size == 0 and self.recent.size == 0


def row_histories(
    matrix: sp.csr_matrix, rows: Sequence[int], sequences: Sequences | None = None
) -> list[History]:
    """The histories of known users as a training matrix has them: each row's items and
    weights, its newest liked items in order (``sequences``), the row itself."""
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    return [
        History(
            indices[indptr[u] : indptr[u + 1]].astype(np.int64),
            data[indptr[u] : indptr[u + 1]].astype(np.float32),
            recent=sequences.of(u) if sequences is not None else np.zeros(0, np.int64),
            row=int(u),
        )
        for u in rows
    ]


class FittedModel(ABC):
    """A fitted model of one family: scores, similar items, explanations, snapshot arrays.

    Immutable once built: a server swaps whole models, and in-flight requests finish on the
    model they started with.
    """

    #: The family's name (``als``, ``ease``, ...), recorded in the manifest.
    family: ClassVar[str]
    #: The arrays :meth:`arrays` returns, by name: their dtype and number of dimensions.
    ARRAYS: ClassVar[Mapping[str, ArraySpec]]
    #: Whether users have trained vectors (``/similar-users`` is answered only then).
    has_user_vectors: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any], n_items: int) -> None:
        self.params = dict(params)
        self.n_items = n_items

    @abstractmethod
    def score(self, histories: Sequence[History]) -> FloatArray:
        """Scores of every item for each history: a fresh, writable ``(len(histories),
        n_items)`` float32 array. One call for a batch of requests (read the model once)."""

    @abstractmethod
    def similar_items(self, col: int, n: int) -> tuple[IntArray, FloatArray]:
        """The ``n`` items most similar to item ``col`` (never ``col`` itself), best first, with
        their similarity."""

    @abstractmethod
    def explain(self, history: History, col: int, n: int) -> tuple[float, IntArray, FloatArray]:
        """How much each of the history's items contributed to item ``col``'s score: (the
        score, the ``n`` largest contributors' columns, their contributions), largest first."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The model as named arrays (exactly ``ARRAYS``), for a snapshot."""

    @classmethod
    @abstractmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any], n_items: int
    ) -> FittedModel:
        """The model back from its arrays (they passed :meth:`check_arrays`; they may be
        read-only memory maps: copy only what must be writable)."""

    @classmethod
    def check_arrays(
        cls, arrays: Mapping[str, np.ndarray], n_users: int, n_items: int
    ) -> list[str]:
        """What is wrong with a snapshot's arrays of this family (shapes, value domains: every
        float finite and bounded, every index in range), as messages; empty if nothing."""
        return []

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays().values()))


class ModelFamily(ABC):
    """A way to learn: its settings, their search space, its cost, and the fit."""

    name: ClassVar[str]

    @abstractmethod
    def defaults(self) -> dict[str, Any]:
        """Settings used when neither the operator nor the tuner chose any."""

    @abstractmethod
    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Complete ``params`` with defaults and check them (ValueError says what is wrong)."""

    @abstractmethod
    def suggest(self, trial: Any) -> dict[str, Any]:
        """Settings for one optuna trial (``trial.suggest_*``; names prefixed by the family
        name, so one study can search several families)."""

    @abstractmethod
    def cost(self, n_users: int, n_items: int, nnz: int, params: Mapping[str, Any]) -> Cost:
        """Memory (peak bytes while fitting and the model's size, whichever is larger) and time
        a fit is expected to take on 2 cores; a conservative estimate, used to leave a family
        out of a search (with a logged reason) instead of allocating past a budget."""

    @abstractmethod
    def fit(
        self,
        data: TrainingData,
        params: Mapping[str, Any],
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> FittedModel:
        """Fit on ``data`` (raises TrainingError when nothing can be learnt, TrainingAborted
        when ``should_stop`` returns True at a checkpoint)."""

    def refit(
        self,
        model: FittedModel,
        data: TrainingData,
        params: Mapping[str, Any],
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> FittedModel:
        """``model`` brought up to ``data``, which holds what it was fitted without (the quality
        gate's holdout). A full fit by default; a family may do less (ALS: one user step)."""
        return self.fit(data, params, should_stop=should_stop)


@dataclass(frozen=True, slots=True)
class Setting:
    """A model family and its settings: what the builder trains with, and the tuner adopts."""

    family: str
    params: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "params": dict(self.params)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Setting) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.family, tuple(sorted(self.params.items()))))
