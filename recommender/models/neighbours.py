"""Sparse item-item building blocks shared by the neighbourhood families (item-kNN, RP3beta, the
sequence family): the top K of a sparse product per row, histories as a sparse matrix, and the
checks of a CSR matrix stored as three snapshot arrays.

Pure: numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..errors import TrainingAborted, TrainingError
from .base import ArraySpec, Cost, History

__all__ = [
    "MAX_PRODUCT_ENTRIES",
    "check_csr",
    "check_specs",
    "csr_arrays",
    "csr_from_arrays",
    "csr_spec",
    "flatten",
    "likes",
    "product_cost",
    "product_pairs",
    "product_top_k",
    "row_entries",
    "top_k_per_row",
]

#: Most entries of one chunk of a sparse product held at once (about 200 MB with its sort).
MAX_PRODUCT_ENTRIES = 1 << 23
#: A block with at least 1 / DENSE_SHARE of its entries stored is ranked as a dense array.
DENSE_SHARE = 32

IntArray = npt.NDArray[np.int64]


def likes(user_items: sp.csr_matrix, *, binary: bool) -> sp.csr_matrix:
    """The likes of ``user_items`` (positive weights; dislikes and neutral events dropped: they
    must not make items resemble each other), as 1 with ``binary``, else as their weights."""
    matrix = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    matrix.data[matrix.data < 0] = 0.0
    matrix.eliminate_zeros()
    if binary:
        matrix.data[:] = 1.0
    return matrix


def likes_to_learn(user_items: sp.csr_matrix, *, binary: bool, family: str) -> sp.csr_matrix:
    """:func:`likes` of a window for ``family`` to fit on; a window without any is a
    ``TrainingError`` (logged and counted by the builder, never published)."""
    liked = likes(user_items, binary=binary)
    if liked.nnz == 0:
        raise TrainingError(f"the window has no likes: {family} has nothing to learn")
    return liked


def flatten(
    histories: Sequence[History], *, binary: bool
) -> tuple[IntArray, IntArray, npt.NDArray[np.float32]]:
    """A batch of histories as three aligned arrays: which history, which column, which weight
    (+1/-1 for likes and dislikes with ``binary``). Neutral events (0) are left out, so they
    change nothing."""
    if not histories:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    sizes = [h.cols.size for h in histories]
    rows = np.repeat(np.arange(len(histories), dtype=np.int64), sizes)
    cols = np.concatenate([h.cols for h in histories]).astype(np.int64, copy=False)
    weights = np.concatenate([h.weights for h in histories]).astype(np.float32, copy=False)
    if binary:
        weights = np.sign(weights)
    said = weights != 0
    return rows[said], cols[said], weights[said]


def row_entries(indptr: IntArray, rows: IntArray) -> tuple[IntArray, IntArray]:
    """Positions in a CSR matrix's ``indices``/``data`` of the entries of ``rows``, and for each
    the index into ``rows`` it belongs to (vectorised: no loop over rows)."""
    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    owner = np.repeat(np.arange(rows.size), counts)
    # Entry e of row r sits at starts[r] + (e - first entry of r in the output).
    shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return shift + np.arange(owner.size), owner


def top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` largest positive entries, the rest dropped (which of equal values is kept
    is unspecified but deterministic).

    A dense block goes through ``np.argpartition`` (linear per row), a sparse one through one
    sort of its entries (by row, then value): on anime history's 40 %-dense item-item product
    the sort took 11.5 s, the partition well under one."""
    n_rows, n_cols = matrix.shape
    if matrix.nnz * DENSE_SHARE >= n_rows * n_cols and n_rows * n_cols <= 4 * MAX_PRODUCT_ENTRIES:
        return _top_k_dense(matrix, k)
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(matrix.indptr))
    keep = matrix.data > 0
    rows, cols, values = rows[keep], matrix.indices[keep], matrix.data[keep]
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    counts = np.bincount(rows, minlength=n_rows)
    position = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    kept = position < k
    return _csr(rows[kept], cols[kept], values[kept], matrix.shape)


def _top_k_dense(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    dense = matrix.toarray()
    k = min(k, dense.shape[1])
    if k <= 0 or dense.size == 0:
        return sp.csr_matrix(matrix.shape, dtype=np.float32)
    top = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(dense, top, axis=1)
    rows = np.repeat(np.arange(dense.shape[0], dtype=np.int64), k)
    positive = values.ravel() > 0
    return _csr(rows[positive], top.ravel()[positive], values.ravel()[positive], matrix.shape)


def _csr(
    rows: IntArray, cols: npt.NDArray[np.integer], values: npt.NDArray[np.floating], shape: Any
) -> sp.csr_matrix:
    """A CSR matrix of entries given row by row (rows non-decreasing), indices sorted."""
    indptr = np.zeros(shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    result = sp.csr_matrix((values.astype(np.float32), cols.astype(np.int32), indptr), shape=shape)
    result.sort_indices()
    return result


def product_top_k(
    left: sp.csr_matrix,
    right: sp.csr_matrix,
    k: int,
    *,
    column_scale: npt.NDArray[np.floating] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    max_entries: int = MAX_PRODUCT_ENTRIES,
) -> sp.csr_matrix:
    """Each row's top ``k`` of ``(left @ right) * column_scale``, the diagonal left out (an item
    is never its own neighbour), computed a chunk of rows at a time so that memory stays bounded
    by ``max_entries`` whatever the catalogue size."""
    n_rows, n_cols = left.shape[0], right.shape[1]
    right = right.tocsr()
    chunk = max(1, max_entries // max(n_cols, 1))
    parts = []
    for lo in range(0, n_rows, chunk):
        if should_stop():
            raise TrainingAborted("stopped while computing item neighbours")
        hi = min(n_rows, lo + chunk)
        block = (left[lo:hi] @ right).tocsr()
        if column_scale is not None:
            block.data *= column_scale[block.indices]
        rows = np.repeat(np.arange(lo, hi), np.diff(block.indptr))
        block.data[block.indices == rows] = 0.0
        parts.append(top_k_per_row(block, k))
    if not parts:
        return sp.csr_matrix((n_rows, n_cols), dtype=np.float32)
    return sp.vstack(parts, format="csr", dtype=np.float32)


#: Calibration of the cost() estimates (bench/families.py --part fit-scale: 6k to 200k items,
#: one run, measured 1.3 to 4 times below these): seconds per multiply-add of an item-item
#: product, and per entry of the product ranked for its top K.
SECONDS_PER_PAIR = 1e-8
SECONDS_PER_ENTRY = 6e-8
#: Users' numbers of likes vary: sum(deg**2) taken as this many times nnz**2 / users (measured
#: 2.9 on MovieLens and anime history).
DEGREE_SKEW = 4.0


def product_pairs(n_users: int, n_items: int, nnz: int) -> float:
    """The multiply-adds of ``likesᵀ likes`` (the sum over users of their likes squared),
    estimated from the mean number of likes; never more than nnz x items."""
    return min(DEGREE_SKEW * nnz * nnz / max(n_users, 1) + nnz, float(nnz) * max(n_items, 1))


def product_cost(n_users: int, n_items: int, nnz: int, k: int) -> Cost:
    """A conservative cost of :func:`product_top_k` on a users x items matrix with ``nnz``
    likes: its multiply-adds, the entries it ranks, the inputs' copies, one chunk and the
    result."""
    pairs = product_pairs(n_users, n_items, nnz)
    entries = min(pairs, float(n_items) * n_items)
    chunk_bytes = min(entries, MAX_PRODUCT_ENTRIES) * 40  # CSR block, its sort keys and order
    inputs = 4 * nnz * 16 + 8 * (n_users + n_items)
    result = n_items * k * 8 * 2  # the top K per item and the stacked copy
    seconds = pairs * SECONDS_PER_PAIR + entries * SECONDS_PER_ENTRY + 0.01
    return Cost(int(inputs + chunk_bytes + result), float(seconds))


def csr_spec(prefix: str) -> dict[str, ArraySpec]:
    """The three snapshot arrays of a CSR matrix named ``prefix``."""
    return {
        f"{prefix}_indptr": ArraySpec("int64", 1),
        f"{prefix}_indices": ArraySpec("int32", 1),
        f"{prefix}_values": ArraySpec("float32", 1),
    }


def csr_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_indptr": matrix.indptr.astype(np.int64),
        f"{prefix}_indices": matrix.indices.astype(np.int32),
        f"{prefix}_values": matrix.data.astype(np.float32),
    }


def csr_from_arrays(prefix: str, arrays: Mapping[str, np.ndarray], n: int) -> sp.csr_matrix:
    """The square ``n x n`` CSR matrix back (read-only memory maps are fine: never written)."""
    return sp.csr_matrix(
        (arrays[f"{prefix}_values"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
        shape=(n, n),
        copy=False,
    )


def check_specs(arrays: Mapping[str, np.ndarray], specs: Mapping[str, ArraySpec]) -> list[str]:
    """Missing, unexpected, or wrongly typed arrays."""
    problems = [f"missing array {name}" for name in specs if name not in arrays]
    problems += [f"unexpected array {name}" for name in arrays if name not in specs]
    for name, spec in specs.items():
        array = arrays.get(name)
        if array is not None and (array.dtype != np.dtype(spec.dtype) or array.ndim != spec.ndim):
            problems.append(
                f"{name} is {array.dtype} with {array.ndim} dimension(s), "
                f"expected {spec.dtype} with {spec.ndim}"
            )
    return problems


def check_csr(
    arrays: Mapping[str, np.ndarray], prefix: str, n: int, *, low: float, high: float
) -> list[str]:
    """What is wrong with the ``n x n`` CSR matrix ``prefix``: its row pointers (from 0, never
    decreasing, ending at the number of entries), column indices in range, values finite and
    within ``[low, high]``. Call after :func:`check_specs` found nothing."""
    indptr = arrays[f"{prefix}_indptr"]
    indices = arrays[f"{prefix}_indices"]
    values = arrays[f"{prefix}_values"]
    if indptr.shape != (n + 1,):
        return [f"{prefix}_indptr has {indptr.size} entries, expected {n + 1}"]
    if indices.shape != values.shape:
        return [f"{prefix}_indices and {prefix}_values differ in length"]
    if indptr[0] != 0 or indptr[-1] != indices.size or bool(np.any(np.diff(indptr) < 0)):
        return [f"{prefix}_indptr does not delimit {indices.size} entries in order"]
    problems = []
    if indices.size and not bool(np.all((indices >= 0) & (indices < n))):
        problems.append(f"{prefix}_indices are not all item columns in 0..{n - 1}")
    if values.size and not bool(np.all((values >= low) & (values <= high))):  # NaN fails too
        problems.append(f"{prefix}_values are not all finite numbers in [{low:g}, {high:g}]")
    return problems
