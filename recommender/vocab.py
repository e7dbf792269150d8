"""An id vocabulary: external string ids <-> dense row numbers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Vocabulary"]


class Vocabulary:
    """A growing, compactable mapping between external ids and rows ``0..len-1``.

    Rows are assigned in order of first appearance. Lookups of many ids at once take the distinct
    ids of a batch (see :mod:`recommender.events`), so the per-call Python work is proportional to
    the number of distinct ids.
    """

    __slots__ = ("_ids", "_index")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self.add(ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} ids)"

    @property
    def ids(self) -> Sequence[str]:
        """The ids, indexed by row (read-only view)."""
        return self._ids

    def row(self, key: str) -> int | None:
        """The row of ``key``, or None when unknown."""
        return self._index.get(key)

    def id_of(self, row: int) -> str:
        """The id at ``row``."""
        return self._ids[row]

    def add(self, keys: Iterable[str]) -> npt.NDArray[np.int64]:
        """Rows of ``keys``, adding the unknown ones at the end."""
        index, ids = self._index, self._ids
        rows = []
        for key in keys:
            row = index.get(key)
            if row is None:
                row = index[key] = len(ids)
                ids.append(key)
            rows.append(row)
        return np.asarray(rows, dtype=np.int64)

    def compact(self, keep: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        """Drop the rows where ``keep`` is False and renumber the rest in order.

        Returns
        -------
        ndarray of int64
            ``old_row -> new_row`` for every old row (-1 for dropped rows), to renumber arrays
            that refer to this vocabulary.
        """
        if keep.shape != (len(self),):
            raise ValueError(f"keep has shape {keep.shape}, vocabulary has {len(self)} rows")
        remap = np.full(len(self), -1, dtype=np.int64)
        remap[keep] = np.arange(int(keep.sum()))
        self._ids = [key for key, k in zip(self._ids, keep.tolist(), strict=True) if k]
        self._index = {key: row for row, key in enumerate(self._ids)}
        return remap
