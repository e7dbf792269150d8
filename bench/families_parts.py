"""bench/families.py's quality parts: the defaults grids, weights or likes as 1, EASE's precision
and pruning. The cost parts are in bench/families_cost.py."""

from __future__ import annotations

import itertools
import json
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
from recommender.models.ease import EaseModel, ease_weights
from recommender.models.neighbours import likes
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


PARTS = {
    "defaults": part_defaults,
    "weighting": part_weighting,
    "ease-precision": part_ease_precision,
}
