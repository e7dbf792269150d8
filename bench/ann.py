"""Choose an approximate top-k library by measurement: recall@10 against exact maximum inner
product, build time, memory, and single-query latency, on ALS-like item factors.

    .venv/bin/python bench/ann.py [--items 20000,200000,1000000] [--queries 2000]

Factors: real ALS factors (MovieLens, anime; when ../shared/datasets exists) and synthetic ones
shaped like ALS output (items around 300 taste centres, log-normal norms = popularity; users a
mix of one to three centres). Every library runs single-threaded, as the server does per request.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.blas import limit_blas_threads  # noqa: E402

K = 10


def synthetic(items: int, users: int, factors: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((300, factors)).astype(np.float32)
    which = rng.integers(0, 300, items)
    y = centres[which] + 0.6 * rng.standard_normal((items, factors)).astype(np.float32)
    y *= rng.lognormal(0.0, 0.5, items).astype(np.float32)[:, None] / np.sqrt(factors)
    mix = rng.integers(0, 300, (users, 3))
    x = centres[mix].sum(axis=1) + 0.5 * rng.standard_normal((users, factors)).astype(np.float32)
    return y.astype(np.float32), (x / np.sqrt(factors)).astype(np.float32)


def real(name: str, queries: int):
    from recommender.datasets import datasets_dir
    from recommender.evaluation.data import read_interactions, to_matrix
    from recommender.models.als_training import AlsParams, train_als

    shared = datasets_dir()
    if shared is None:
        return None
    path = {
        "movielens": shared / "movielens-latest-small" / "ratings.csv",
        "anime": shared / "anime" / "anime_history.dat",
    }[name]
    fitted = train_als(to_matrix(read_interactions(path)), AlsParams(factors=64))
    users = fitted.user_factors[
        np.random.default_rng(1).integers(0, len(fitted.user_factors), queries)
    ]
    return fitted.item_factors, users


def exact_top(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    out = np.empty((len(x), K), np.int64)
    for lo in range(0, len(x), 256):
        scores = x[lo : lo + 256] @ y.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        out[lo : lo + 256] = top
    return out


def augment(y: np.ndarray) -> np.ndarray:
    """MIPS -> nearest neighbour: append sqrt(M^2 - |y|^2) so every vector has norm M."""
    norms = np.einsum("ij,ij->i", y, y)
    return np.hstack([y, np.sqrt(np.maximum(norms.max() - norms, 0))[:, None]]).astype(np.float32)


def faiss_hnsw(y: np.ndarray, ef: int):
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexHNSWFlat(y.shape[1] + 1, 32)
    index.hnsw.efConstruction = 100
    index.add(augment(y))
    index.hnsw.efSearch = ef

    def search(q: np.ndarray) -> np.ndarray:
        return index.search(np.hstack([q, np.zeros((len(q), 1), np.float32)]), K)[1]

    return search


def faiss_hnsw_ip(y: np.ndarray, ef: int):
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexHNSWFlat(y.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 100
    index.add(y)
    index.hnsw.efSearch = ef
    return lambda q: index.search(q, K)[1]


def hnswlib_ip(y: np.ndarray, ef: int):
    import hnswlib

    index = hnswlib.Index(space="ip", dim=y.shape[1])
    index.init_index(max_elements=len(y), M=16, ef_construction=100)
    index.set_num_threads(1)
    index.add_items(y)
    index.set_ef(ef)
    return lambda q: index.knn_query(q, k=K, num_threads=1)[0]


def usearch_ip(y: np.ndarray, ef: int):
    from usearch.index import Index

    index = Index(ndim=y.shape[1], metric="ip", dtype="f32", connectivity=16, expansion_add=100,
                  expansion_search=ef)  # fmt: skip
    index.add(np.arange(len(y)), y, threads=1)

    def search(q: np.ndarray) -> np.ndarray:
        return np.asarray(index.search(q, K, threads=1).keys).reshape(len(q), -1)

    return search


LIBRARIES: dict[str, Callable] = {
    "faiss HNSW (MIPS->L2)": faiss_hnsw,
    "faiss HNSW (ip)": faiss_hnsw_ip,
    "hnswlib (ip)": hnswlib_ip,
    "usearch (ip)": usearch_ip,
}


def measure(name: str, y: np.ndarray, x: np.ndarray, efs: list[int]) -> None:
    truth = exact_top(y, x)
    started = time.perf_counter()
    single = x[:200]
    for _ in range(3):
        for q in single:
            y @ q
    exact_us = (time.perf_counter() - started) / (3 * len(single)) * 1e6
    print(f"\n### {name}: {len(y):,} items x {y.shape[1]} factors, {len(x):,} queries; exact "
          f"matvec + top-k {exact_us:.0f} µs a query\n")  # fmt: skip
    print("| library | ef | build s | recall@10 | µs a query (median of single queries) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, make in LIBRARIES.items():
        for ef in efs:
            gc.collect()
            started = time.perf_counter()
            search = make(y, ef)
            build = time.perf_counter() - started
            found = np.vstack([search(x[lo : lo + 500]) for lo in range(0, len(x), 500)])
            recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True)])
            times = []
            for q in x[:300]:
                t = time.perf_counter()
                search(q[None, :])
                times.append(time.perf_counter() - t)
            print(f"| {label} | {ef} | {build:.1f} | {recall:.3f} | {np.median(times) * 1e6:.0f} |",
                  flush=True)  # fmt: skip
            del search
            # Building the same index once per ef is wasteful but keeps the libraries comparable.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="20000,200000,1000000")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--ef", default="32,64,128")
    args = parser.parse_args()
    limit_blas_threads()
    efs = [int(e) for e in args.ef.split(",")]
    print(f"Command: `.venv/bin/python bench/ann.py {' '.join(sys.argv[1:])}` "
          f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)")  # fmt: skip
    for name in ("movielens", "anime"):
        found = real(name, args.queries)
        if found is not None:
            measure(f"{name} ALS factors", *found, efs)
    for items in (int(n) for n in args.items.split(",")):
        measure("synthetic ALS-like factors", *synthetic(items, args.queries), efs)


if __name__ == "__main__":
    main()
