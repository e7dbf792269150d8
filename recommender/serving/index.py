"""How the top items are found: every item scored (exact), or an HNSW graph over the item
factors searched by inner product (approximate, for large catalogues).

The graph is faiss's ``IndexHNSWFlat`` with the inner-product metric, chosen by measurement among
faiss, hnswlib and usearch (``bench/ann.py``; BENCHMARKS.md): at equal recall it was as fast as
hnswlib and faster than usearch, builds as fast, and ships binary wheels. It is built once per
snapshot, in the thread that loads the snapshot (never on the request path), and searched with
one thread per request.

Filtering stays exact: the graph is asked for ``n + offset`` plus the number of items the request
leaves out (seen, excluded, outside the catalogue), and asked again for four times as many when
filtering leaves too few; past max(256, 1 % of the catalogue) every item is scored instead (deep
in the ranking a graph is both slower and less exact than a scan). So ``n``
items always come back when they exist. Similar items (cosine, in the model family) are always
scored exactly: an inner-product graph is a poor source of cosine neighbours (measured: 17 %
overlap with the exact top 10 on ALS-like factors), and a second graph would double the memory.
Pure: numpy and faiss.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

__all__ = ["AnnSettings", "ExactTopK", "GraphTopK", "TopK", "make_top_k", "select_top"]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
_MIN_GRAPH_ITEMS: Final = 1000  # below this a graph is never worth it
#: Up to this many factor values (64 MiB) exact scoring keeps a factor-major copy.
MAX_FACTOR_MAJOR: Final = 16 << 20


@dataclass(frozen=True, slots=True)
class AnnSettings:
    """When and how to use the graph: from ``threshold`` items on, unless ``exact``."""

    threshold: int = 50_000
    exact: bool = False
    ef_search: int = 128
    ef_construction: int = 100
    links: int = 16


def select_top(scores: FloatArray, n: int) -> IntArray:
    """Positions of the ``n`` best finite scores, best first (banned ones are -inf)."""
    size = scores.size
    n = min(n, size)
    if n <= 0:
        return np.zeros(0, np.int64)
    positive = scores > 0
    count = int(np.count_nonzero(positive))
    if n <= count < size // 2:
        # Sparse scores (an item-item family's: a history touches few items' neighbours): the
        # best n are among the positive ones. argpartition over the whole array would meet
        # thousands of equal zeros, where introselect can be very slow (at 20k items with 60 %
        # zeros, 1,280 µs against 57 µs for the positives alone; 620 against 40 in a kNN answer).
        candidates = np.flatnonzero(positive)
        top = candidates[np.argpartition(scores[candidates], count - n)[count - n :]]
    elif n < size:
        top = np.argpartition(scores, size - n)[size - n :]
    else:
        top = np.arange(size)
    top = top[np.argsort(-scores[top], kind="stable")]
    return top[np.isfinite(scores[top])].astype(np.int64)


def _allowed(ids: IntArray, banned: IntArray) -> npt.NDArray[np.bool_]:
    """Which ``ids`` are not ``banned``. A few dozen ids against a user's few dozen banned
    columns is the usual case: comparing all pairs is then several times faster than
    ``np.isin``, whose set-up dominated the graph path's filtering (18 % of the server's time
    at 200k items, py-spy)."""
    if not banned.size:
        return np.ones(ids.size, bool)
    if ids.size * banned.size <= 1 << 16:
        return ~(ids[:, None] == banned[None, :]).any(axis=1)
    return ~np.isin(ids, banned)


class ExactTopK:
    """Scores every item: ``vector @ item_factorsᵀ``.

    A factor-major (factors x items) copy of the item factors makes that a product whose
    output runs along the rows BLAS reads: measured on 20,000 x 64 with one thread, 188 µs for
    one vector against 226 µs for ``item_factors @ vector``, and 437 µs against 1,880 µs for 8
    vectors scored one by one (``bench/run.py --only http`` gains from it). Kept up to
    ``MAX_FACTOR_MAJOR`` values; larger catalogues score from the item-major factors.
    """

    kind = "exact"

    def __init__(self, item_factors: FloatArray, *, factor_major: bool = True) -> None:
        self.item_factors = item_factors
        self._factor_major: FloatArray | None = None
        if factor_major and item_factors.size <= MAX_FACTOR_MAJOR:
            self._factor_major = np.ascontiguousarray(item_factors.T, dtype=np.float32)

    def score_many(self, vectors: FloatArray) -> FloatArray:
        """Every item's score for each row of ``vectors`` (rows x items, fresh and writable)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if self._factor_major is not None:
            return vectors @ self._factor_major
        return np.ascontiguousarray((self.item_factors @ vectors.T).T, dtype=np.float32)

    @property
    def approximate(self) -> bool:
        return False

    def top(
        self,
        vector: FloatArray,
        n: int,
        banned: IntArray,
        scores: FloatArray | None = None,
    ) -> tuple[IntArray, FloatArray]:
        """The ``n`` best columns for ``vector`` outside ``banned``, and their scores.
        ``scores`` may be given (precomputed for a batch; modified here)."""
        if scores is None:
            scores = self.score_many(vector[None, :])[0]
        if banned.size:
            scores[banned] = -np.inf
        cols = select_top(scores, n)
        return cols, scores[cols]


class GraphTopK(ExactTopK):
    """An HNSW graph over the item factors, searched by inner product."""

    kind = "hnsw"

    def __init__(self, item_factors: FloatArray, settings: AnnSettings) -> None:
        import faiss as faiss_module

        faiss = cast(Any, faiss_module)  # its bundled type hints miss the HNSW API

        super().__init__(item_factors, factor_major=False)  # rare exact fallbacks: no copy
        started = time.perf_counter()
        vectors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self._graph = faiss.IndexHNSWFlat(
            vectors.shape[1], settings.links, faiss.METRIC_INNER_PRODUCT
        )
        self._graph.hnsw.efConstruction = settings.ef_construction
        self._graph.add(vectors)
        self._graph.hnsw.efSearch = settings.ef_search
        self.ef_search = settings.ef_search
        self.build_seconds = time.perf_counter() - started
        self._params = faiss.SearchParametersHNSW()

    @property
    def approximate(self) -> bool:
        return True

    def _search(self, vector: FloatArray, k: int) -> tuple[IntArray, FloatArray]:
        self._params.efSearch = max(self.ef_search, k)
        scores, ids = self._graph.search(
            np.ascontiguousarray(vector, dtype=np.float32)[None, :], k, params=self._params
        )
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def top(
        self,
        vector: FloatArray,
        n: int,
        banned: IntArray,
        scores: FloatArray | None = None,
    ) -> tuple[IntArray, FloatArray]:
        total = self.item_factors.shape[0]
        if scores is not None:  # already scored exactly (a batch): nothing left to save
            return super().top(vector, n, banned, scores)
        # Deep enough for the banned columns likely near the top (the user's own items), not
        # for every one: a catalogue hiding 1 % of 200,000 items made every search 2,000 deep
        # (3.6 ms); too few left after filtering asks again, 4 times deeper.
        k = n + min(banned.size, 4 * n + 64) + 10
        # Deep searches are where a graph is weakest and slowest: measured on 20,000 items, a
        # search 430 deep took 4x the exact scan and found half of ranks 401-420.
        while k <= max(256, total // 100):
            ids, found = self._search(vector, k)
            keep = _allowed(ids, banned)
            if np.count_nonzero(keep) >= n or ids.size < k:
                return ids[keep][:n], found[keep][:n]
            k *= 4  # filtering left too few: ask for more
        return super().top(vector, n, banned)


TopK = ExactTopK


def make_top_k(item_factors: FloatArray, settings: AnnSettings | None) -> ExactTopK:
    """The graph for catalogues of at least ``settings.threshold`` items, else exact scoring."""
    items = item_factors.shape[0]
    if settings is None or settings.exact or items < max(settings.threshold, _MIN_GRAPH_ITEMS):
        return ExactTopK(item_factors)
    try:
        index = GraphTopK(item_factors, settings)
    except ImportError:  # faiss missing: exact answers, and say so once per snapshot
        log.warning("faiss is not installed: scoring all %d items per request", items)
        return ExactTopK(item_factors)
    log.info("built an HNSW graph over %d items in %.1f s", items, index.build_seconds)
    return index
