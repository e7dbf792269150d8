"""bench/families.py's other parts: defaults, weighting, EASE's scale and precision, score() and fit
speed at 20k/200k items, our kNN against implicit's."""

from __future__ import annotations

import itertools
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
    Dataset,
    ranking,
    task,
)

from recommender.datasets import datasets_dir
from recommender.evaluation.data import read_interactions, with_rating_scale
from recommender.index import ExactTopK
from recommender.models import History, TrainingData
from recommender.models.ease import EaseFamily, EaseModel, ease_weights
from recommender.models.knn import KnnModel
from recommender.models.neighbours import likes, product_top_k
from recommender.models.rp3beta import Rp3BetaModel
from recommender.models.sequence import SequenceModel
from recommender.models.similarity import SimilarityModel
from recommender.ratings import RatingScale

#: Round 1: wide grids. Round 2: finer grids around round 1's winners, wider where a winner
#: sat on a grid's edge (EVALUATION-families.md shows both). The sequence family's round 2 ran
#: after its one neighbour count was split in two (successors 100, cosine neighbours 20).
GRIDS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "1": {
        "EASE": [{"ease_lambda": v} for v in (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)],
        "RP3beta": [
            {"rp3beta_alpha": a, "rp3beta_beta": b, "rp3beta_neighbours": k}
            for a, b, k in itertools.product((0.6, 0.8, 1.0), (0.2, 0.4, 0.6), (50, 200))
        ],
        "item-kNN cosine": [{"knn_neighbours": k} for k in (20, 50, 100, 200, 500)],
        "item-kNN BM25": [
            {"knn_neighbours": k, "knn_bm25_k1": k1, "knn_bm25_b": b}
            for k, k1, b in itertools.product((50, 200), (0.5, 1.2, 5.0, 50.0), (0.25, 0.75))
        ],
        "sequence": [  # sequence_beta (a popularity penalty, since removed: it never won)
            {"sequence_steps": s, "sequence_decay": d, "sequence_fallback": f}
            for s, d, f in itertools.product((1, 3, 8), (0.3, 0.7), (0.03, 0.3, 3.0))
        ],
    },
    "2": {
        "EASE": [{"ease_lambda": v} for v in (20.0, 50.0, 70.0, 100.0, 150.0, 200.0)],
        "RP3beta": [
            {"rp3beta_alpha": a, "rp3beta_beta": b, "rp3beta_neighbours": k}
            for a, b, k in itertools.product((0.3, 0.45, 0.6), (0.5, 0.6, 0.7, 0.8), (200, 500))
        ],
        "item-kNN cosine": [{"knn_neighbours": k} for k in (5, 10, 20, 30)],
        "item-kNN BM25": [
            {"knn_neighbours": k, "knn_bm25_k1": k1, "knn_bm25_b": b}
            for k, k1, b in itertools.product((10, 20, 50), (5.0, 50.0), (0.25, 0.5))
        ],
        "sequence": [
            {"sequence_steps": s, "sequence_decay": d, "sequence_fallback": f}
            for s, d, f in itertools.product((3, 8, 20), (0.5, 0.7, 0.85), (1.0, 3.0, 10.0))
        ],
    },
    "3": {  # round 2's winner sat on the fallback's edge
        "sequence": [
            {"sequence_steps": s, "sequence_decay": d, "sequence_fallback": f}
            for s, d, f in itertools.product((2, 3, 5), (0.3, 0.5), (5.0, 10.0, 30.0, 100.0))
        ],
    },
}


def _validations(names) -> list[tuple[str, Any]]:
    """Every data set's validation split(s), carved from the training part of its test split."""
    from families_lib import datasets

    out = []
    for dataset in datasets(names):
        for protocol, make in PROTOCOLS.items():
            if protocol == "last" and not dataset.ordered:
                continue
            train = make(dataset.data, 42).train
            out.append((f"{dataset.name}/{protocol}", task(make(train, 43), dataset)))
    return out


def part_defaults(names, args) -> None:
    """Each family's grid on every validation split; the rule (as for ALS's defaults): the best
    worst case of the ratio to each split's best grid point, then the best mean."""
    splits = _validations(names)
    grids = GRIDS[args.grid]
    only = [f for f in args.families.split(",") if f]
    wanted = [c for c in CANDIDATES if c.label in grids and (not only or c.label in only)]
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / f"defaults-{args.grid}.json"
    report: dict[str, Any] = json.loads(saved.read_text()) if saved.is_file() else {}
    for candidate in wanted:
        grid = grids[candidate.label]
        scores = np.array(
            [[np.nanmean(ranking(candidate.fit(v.data, p), v)[0]) for p in grid] for _, v in splits]
        )
        ratios = scores / scores.max(axis=1, keepdims=True)
        worst, mean = ratios.min(axis=0), ratios.mean(axis=0)
        order = np.lexsort((-mean, -worst))
        report[candidate.label] = {
            "grid": grid,
            "scores": scores.tolist(),
            "splits": [n for n, _ in splits],
        }
        print(f"\n#### {candidate.label}: validation NDCG@10 / each split's best grid point\n")
        print("| settings | worst | mean | " + " | ".join(n for n, _ in splits) + " |")
        print("| --- | ---: | ---: |" + " ---: |" * len(splits))
        for k in order[:6]:
            cells = " | ".join(f"{ratios[d, k]:.2f}" for d in range(len(splits)))
            label = ", ".join(f"{n.split('_', 1)[1]} {v:g}" for n, v in grid[k].items())
            print(f"| {label} | {worst[k]:.2f} | {mean[k]:.2f} | {cells} |", flush=True)
        saved.write_text(json.dumps(report))  # other families' results kept


def part_weighting(names, args) -> None:
    """Learn (and score) from likes as 1 or from their weights, on the sets whose weights vary:
    MovieLens and anime ratings through their rating scales (likes, neutral, dislikes)."""
    from families_lib import datasets

    sets = datasets(["ml-ratings"])
    shared = datasets_dir()
    anime = shared / "anime" / "anime_ratings.dat" if shared else None
    if anime is not None and anime.is_file():
        scaled = with_rating_scale(read_interactions(anime), RatingScale.parse("1..10"))
        sets.append(Dataset("anime-ratings-scale", scaled, False, False))
    flags = {
        "EASE": "ease_binary",
        "RP3beta": "rp3beta_binary",
        "item-kNN BM25": "knn_binary",
        "item-kNN cosine": "knn_binary",
    }
    print("\n| data / protocol | family | likes as 1 | weights | weights - likes as 1 |")
    print("| --- | --- | ---: | ---: | ---: |")
    for dataset in sets:
        for protocol, make in PROTOCOLS.items():
            if protocol == "last" and not dataset.ordered:
                continue
            v = task(make(make(dataset.data, 42).train, 43), dataset)
            for candidate in (c for c in CANDIDATES if c.label in flags):
                got = [
                    np.nanmean(ranking(candidate.fit(v.data, {flags[candidate.label]: b}), v)[0])
                    for b in (True, False)
                ]
                print(
                    f"| {dataset.name} / {protocol} | {candidate.label} | {got[0]:.4f} | "
                    f"{got[1]:.4f} | {got[1] - got[0]:+.4f} |",
                    flush=True,
                )


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


class PrunedEase(SimilarityModel):
    """EASE's B kept as each row's largest entries by magnitude (signed: ItemGraph clips a
    dislike's row at 0). Measured here only: a sparse snapshot, not a larger fit."""

    family = "ease"
    VALUES = (-1e6, 1e6)


def _pruned(weights: np.ndarray, k: int) -> sp.csr_matrix:
    top = np.argpartition(-np.abs(weights), k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(weights.shape[0]), k)
    values = weights[rows, top.ravel()]
    return sp.csr_matrix((values, (rows, top.ravel())), shape=weights.shape, dtype=np.float32)


def _top_lists(model, t, users) -> np.ndarray:
    from families_lib import histories

    hs = histories(t.data, users)
    scores = model.score(hs)
    for row, h in enumerate(hs):
        scores[row, h.cols] = -np.inf
    return np.argsort(-scores, axis=1)[:, :10]


def part_ease_precision(names, args) -> None:
    """float32 (what EASE computes) against a float64 numpy inverse, and B pruned to its largest
    entries per row, on the random protocol's test split."""
    from families_lib import datasets

    print(
        "\n| data | λ | B | max abs ΔB / max abs B | NDCG@10 | NDCG@10 float64 "
        "| top-10 overlap with float64 |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for dataset in datasets(names or ["ml-likes", "anime-history"]):
        t = task(PROTOCOLS["random"](dataset.data, 42), dataset)
        liked = likes(t.data.user_items, binary=True)
        gram = (liked.T @ liked).toarray().astype(np.float64)
        users = t.users[:500]
        for lam in (10.0, 50.0, 1000.0):
            single = ease_weights(liked, lam)
            inverse = np.linalg.inv(gram + lam * np.eye(gram.shape[0]))
            double = -inverse / np.diag(inverse)[None, :]
            np.fill_diagonal(double, 0.0)
            exact = EaseModel({}, liked.shape[1], double.astype(np.float32))
            reference = np.nanmean(ranking(exact, t)[0])
            reference_top = _top_lists(exact, t, users)
            variants = [("float32", EaseModel({}, liked.shape[1], single))]
            if lam == 50.0:
                variants += [
                    (f"top {k} per row", PrunedEase({}, liked.shape[1], _pruned(single, k)))
                    for k in (50, 200, 1000)
                ]
            for label, model in variants:
                top = _top_lists(model, t, users)
                overlap = np.mean(
                    [len(set(a) & set(b)) / 10 for a, b in zip(top, reference_top, strict=True)]
                )
                error = np.abs(single - double).max() / np.abs(double).max()
                shown = f"{error:.1e}" if label == "float32" else "-"
                print(
                    f"| {dataset.name} | {lam:g} | {label} | {shown} "
                    f"| {np.nanmean(ranking(model, t)[0]):.4f} | {reference:.4f} | {overlap:.3f} |",
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


PARTS = {
    "defaults": part_defaults,
    "weighting": part_weighting,
    "ease-scale": part_ease_scale,
    "ease-precision": part_ease_precision,
    "score-speed": part_score_speed,
    "fit-scale": part_fit_scale,
    "knn-speed": part_knn_speed,
}

if __name__ == "__main__" and sys.argv[1] in ("ease-child", "fit-child"):
    from recommender.blas import limit_blas_threads

    limit_blas_threads()
    if sys.argv[1] == "ease-child":
        ease_scale_child(int(sys.argv[2]), int(sys.argv[3]))
    else:
        fit_child(sys.argv[2], sys.argv[3])
