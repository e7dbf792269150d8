"""bench/families.py's cost parts: EASE's fit against the catalogue size, every family's fit against
its cost(), score() per history at 20k/200k items, our kNN product against implicit's, and a small
transformer's throughput (SASRec)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from families_lib import (
    CANDIDATES,
    PROTOCOLS,
    task,
)

from recommender.models import History, TrainingData
from recommender.models.ease import EaseFamily, EaseModel, ease_weights
from recommender.models.knn import KnnModel
from recommender.models.neighbours import likes, product_top_k
from recommender.models.rp3beta import Rp3BetaModel
from recommender.models.sequence import SequenceModel
from recommender.serving.index import ExactTopK


def synthetic_likes(n_items: int, n_users: int, per_user: int, seed: int = 0) -> sp.csr_matrix:
    """Users x items likes with Zipf-skewed items (exponent 0.8) and 200 taste groups."""
    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, n_items + 1) ** 0.8
    zipf /= zipf.sum()
    items = rng.choice(n_items, n_users * per_user, p=zipf)
    groups = rng.integers(0, 200, n_users)
    in_group = rng.random(items.size) < 0.7
    users = np.repeat(np.arange(n_users), per_user)
    items = np.where(in_group, (items // 200) * 200 + groups[users], items) % n_items
    matrix = sp.csr_matrix(
        (np.ones(items.size, np.float32), (users, items)), shape=(n_users, n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak() -> float:
    """Reset this process's peak RSS (Linux: ``5`` to clear_refs) and return the RSS now, so that
    a later VmHWM is the peak of what follows, not of loading the data."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def _peak_since(base: float) -> float:
    return _status_mib("VmHWM") - base


def ease_scale_child(n_items: int, threads: int) -> None:
    """One EASE fit in this process: prints JSON (fit s, peak RSS above the data, cost())."""
    import threadpoolctl

    liked = synthetic_likes(n_items, 2 * n_items, 40)
    before = _reset_peak()
    started = time.perf_counter()
    with threadpoolctl.threadpool_limits(threads, "blas"):
        ease_weights(liked, 50.0)
    seconds = time.perf_counter() - started
    cost = EaseFamily().cost(liked.shape[0], n_items, liked.nnz, {})
    print(
        json.dumps(
            {
                "items": n_items,
                "users": liked.shape[0],
                "nnz": liked.nnz,
                "fit_s": seconds,
                "peak_mib": _peak_since(before),
                "estimate_mib": cost.bytes / 2**20,
                "estimate_s": cost.seconds,
            }
        )
    )


def part_ease_scale(names, args) -> None:
    sizes = [int(s) for s in (args.sizes or "1000,2000,5000,10000,15000,20000").split(",")]
    print("\n| items | users | likes | fit s | peak MiB above the data | cost() MiB | cost() s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in sizes:
        done = subprocess.run(
            [sys.executable, __file__, "ease-child", str(n), str(args.threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {n:,} | {r['users']:,} | {r['nnz']:,} | {r['fit_s']:.1f} | {r['peak_mib']:.0f} | "
            f"{r['estimate_mib']:.0f} | {r['estimate_s']:.1f} |",
            flush=True,
        )


def _random_graph(n: int, k: int, rng) -> sp.csr_matrix:
    cols = rng.integers(0, n, (n, k)).astype(np.int32)
    values = rng.random((n, k), dtype=np.float32)
    return sp.csr_matrix((values.ravel(), cols.ravel(), np.arange(n + 1) * k), shape=(n, n))


def _per_history_us(score, hs, batch: int) -> float:
    score(hs[:batch])
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < 1.0:
        for lo in range(0, len(hs), batch):
            score(hs[lo : lo + batch])
        done += len(hs)
    return (time.perf_counter() - started) / done * 1e6


def part_score_speed(names, args) -> None:
    """score() microseconds per history, models with their default neighbours per item (random
    arrays: the cost does not depend on the values) and ALS's exact scoring (64 factors) as the
    reference."""
    rng = np.random.default_rng(0)
    print("\n| items | model | history items | µs / history (batch 1) | µs / history (batch 16) |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for n in (20_000, 200_000):
        factors = ExactTopK(rng.standard_normal((n, 64)).astype(np.float32))
        vectors = rng.standard_normal((16, 64)).astype(np.float32)
        models: dict[str, Any] = {
            "ALS exact (reference)": lambda hs, f=factors, v=vectors: f.score_many(v[: len(hs)]),
            "item-kNN (20 neighbours, the default)": KnnModel(
                {}, n, _random_graph(n, 20, rng)
            ).score,
            "item-kNN (100 neighbours)": KnnModel({}, n, _random_graph(n, 100, rng)).score,
            "RP3beta (500 neighbours, the default)": Rp3BetaModel(
                {}, n, _random_graph(n, 500, rng)
            ).score,
            "sequence (100 successors, 20 similar)": SequenceModel(
                {}, n, _random_graph(n, 100, rng), _random_graph(n, 20, rng)
            ).score,
        }
        if n <= 20_000:
            dense = rng.standard_normal((n, n), dtype=np.float32)
            np.fill_diagonal(dense, 0)
            models["EASE"] = EaseModel({}, n, dense).score
        for size in (10, 50, 200):
            hs = [
                History(c, np.ones(size, np.float32), c[-50:])
                for c in (rng.choice(n, size, replace=False).astype(np.int64) for _ in range(64))
            ]
            for label, score in models.items():
                one, sixteen = _per_history_us(score, hs, 1), _per_history_us(score, hs, 16)
                print(f"| {n:,} | {label} | {size} | {one:.0f} | {sixteen:.0f} |", flush=True)
        if n > 20_000:
            print(f"| {n:,} | EASE | - | impossible: B alone is {4 * n * n / 2**30:.0f} GiB | |")


WINDOWS = {"synthetic-20k": (20_000, 50_000), "synthetic-200k": (200_000, 100_000)}


def _window(name: str) -> TrainingData:
    """A synthetic window (30 likes a user, in random order) or a real set's whole window."""
    from recommender.models.sequence import sequences_from_events

    if name in WINDOWS:
        n_items, n_users = WINDOWS[name]
        liked = synthetic_likes(n_items, n_users, 30)
        order = np.random.default_rng(1).random(liked.nnz)
        users = np.repeat(np.arange(n_users), np.diff(liked.indptr))
        items = liked.indices.astype(np.int64)
        return TrainingData(liked, sequences_from_events(n_users, users, items, order))
    from families_lib import datasets, training_data

    from recommender.evaluation.splits import Split

    dataset = datasets([name])[0]
    nothing = dataset.data.subset(np.zeros(len(dataset.data), bool))
    return training_data(Split(dataset.data, nothing, "every event"), dataset)


def fit_child(window: str, label: str) -> None:
    """One fit in this process: prints JSON (fit s, peak RSS above the data, cost())."""
    data = _window(window)
    candidate = next(c for c in CANDIDATES if c.label == label)
    before = _reset_peak()
    started = time.perf_counter()
    candidate.fit(data, {})
    seconds = time.perf_counter() - started
    est_mib, est_s = candidate.cost(data, {})
    n_users, n_items = data.shape
    print(json.dumps({"users": n_users, "items": n_items, "nnz": data.user_items.nnz,
                      "fit_s": seconds, "peak_mib": _peak_since(before),
                      "estimate_mib": est_mib, "estimate_s": est_s}))  # fmt: skip


def part_fit_scale(names, args) -> None:
    """Each family's default fit in a fresh process (peak RSS, so implicit's C++ buffers count)
    against its cost(), on synthetic windows of 20k and 200k items and the largest real sets."""
    print("\n| window | items | users | likes | family | fit s | peak MiB above the data "
          "| cost() MiB | cost() s |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for window in names or ["anime-history", "ml-likes", *WINDOWS]:
        for candidate in CANDIDATES:
            if candidate.family is None or (candidate.label == "EASE" and window in WINDOWS):
                continue  # EASE's sizes: --part ease-scale
            done = subprocess.run(
                [sys.executable, __file__, "fit-child", window, candidate.label],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"| {window} | {r['items']:,} | {r['users']:,} | {r['nnz']:,} | {candidate.label} "
                f"| {r['fit_s']:.1f} | {r['peak_mib']:.0f} | {r['estimate_mib']:.0f} "
                f"| {r['estimate_s']:.1f} |",
                flush=True,
            )


def part_knn_speed(names, args) -> None:
    """Cosine top-100 neighbours: our chunked scipy product (one thread; RP3beta's) against
    implicit's all_pairs_knn (what item-kNN uses)."""
    from families_lib import datasets
    from implicit._nearest_neighbours import all_pairs_knn
    from implicit.nearest_neighbours import normalize

    windows = [
        (d.name, likes(task(PROTOCOLS["random"](d.data, 42), d).data.user_items, binary=True))
        for d in datasets(names or ["ml-likes", "anime-history"])
    ]
    windows.append(("synthetic 200k items", synthetic_likes(200_000, 100_000, 30)))
    print("\n| window | items | likes | ours s | implicit s (1 thread) | implicit s (2 threads) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, liked in windows:
        norms = np.sqrt(np.asarray(liked.sum(axis=0)).ravel())
        unit = sp.csr_matrix(liked.multiply(1.0 / np.maximum(norms, 1e-12)[None, :]))
        started = time.perf_counter()
        product_top_k(unit.T.tocsr(), unit, 100)
        ours = time.perf_counter() - started
        theirs = []
        for threads in (1, 2):
            weighted = normalize(liked.T).T.tocsr()
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                all_pairs_knn(weighted, 101, num_threads=threads, show_progress=False)
            theirs.append(time.perf_counter() - started)
        print(
            f"| {name} | {liked.shape[1]:,} | {liked.nnz:,} | {ours:.2f} | {theirs[0]:.2f} "
            f"| {theirs[1]:.2f} |",
            flush=True,
        )


def part_sasrec_estimate(names, args) -> None:
    """Throughput of the matrix products one small SASRec block (d 64, 50 positions, batch 128)
    is made of, float32 numpy: the floor of what a CPU epoch would cost (no torch here)."""
    import threadpoolctl

    d, positions, batch = 64, 50, 128
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((batch * positions, d), dtype=np.float32)
    weights = rng.standard_normal((d, d), dtype=np.float32)
    queries = rng.standard_normal((batch, positions, d), dtype=np.float32)

    def block() -> None:
        for _ in range(6):  # Q, K, V and output projections, two feed-forward layers
            tokens @ weights
        (queries @ queries.transpose(0, 2, 1)) @ queries  # attention scores, weighted values

    flops = 2 * batch * positions * (6 * d * d + 2 * positions * d)
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(threads, "blas"):
            block()
            started, done = time.perf_counter(), 0
            while time.perf_counter() - started < 2.0:
                block()
                done += 1
            seconds = (time.perf_counter() - started) / done
        print(f"- {threads} thread(s): {seconds * 1e3:.2f} ms per block forward of "
              f"{batch * positions:,} tokens, {flops / seconds / 1e9:.0f} GFLOP/s")  # fmt: skip


PARTS = {
    "ease-scale": part_ease_scale,
    "fit-scale": part_fit_scale,
    "score-speed": part_score_speed,
    "knn-speed": part_knn_speed,
    "sasrec-estimate": part_sasrec_estimate,
}

if __name__ == "__main__" and sys.argv[1] in ("ease-child", "fit-child"):
    from recommender.blas import limit_blas_threads

    limit_blas_threads()
    if sys.argv[1] == "ease-child":
        ease_scale_child(int(sys.argv[2]), int(sys.argv[3]))
    else:
        fit_child(sys.argv[2], sys.argv[3])
