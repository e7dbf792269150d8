#!/usr/bin/env python3
"""The learned ranker against the first stage alone, on every data set we have, printed as
Markdown: does ranking candidates with features earn its place, and with which objective?

    .venv/bin/python bench/ranker.py                      # every data set, both protocols
    .venv/bin/python bench/ranker.py --data anime-ratings --protocols random --per-source 100
    .venv/bin/python bench/ranker.py --part seed          # the seed's measure on anime ratings

For each data set and protocol: the split of bench/families.py (seed 42): the training events are
what the sources learn (EASE with its defaults, the first stage, and popularity), the test events
are the labels. Candidates: each source's ``--per-source`` best unseen items, with the features of
``recommender.ranker`` (both sources' scores and ranks, item and user stats, category match and
item attributes where the data set has item information: MovieLens genres and year, anime
genres, type, episodes, rating and members). The test users are split 70/30: the ranker learns
on the first part and is compared with the first stage's order on the second, per user
(NDCG@10, paired bootstrap interval), for LightGBM's ``lambdarank`` and ``binary`` objectives,
and with a linear blend (logistic regression on the same features) as the baseline to beat.

``--part seed``: the seed design's own measure on ``anime_ratings.dat``: for each user's held-out
ratings (a random 20 %, seed 42), predict whether the rating is above 7, from the same features
of the (user, item) pair (EASE learnt from the training ratings above 7; a user's liked share is
their share of ratings above 7). Accuracy and AUC on 30 % of the users, learnt on the rest,
against the majority class, the anime's community rating alone, and the linear blend.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from families_lib import PROTOCOLS, datasets, histories, task

from recommender.blas import limit_blas_threads
from recommender.datasets import datasets_dir
from recommender.features import (
    FeatureSchema,
    ItemInformation,
    attribute_matrix,
    item_stats,
    user_stats,
)
from recommender.models import History, make_family
from recommender.ranker import Context, candidate_table, fit_ranker
from recommender.user_metrics import PairedComparison


def item_information(name: str, item_ids: list[str]) -> tuple[sp.csr_matrix | None, dict, list]:
    """(items x categories, attributes by item id, attribute names) for the data sets that have
    item information, else (None, {}, [])."""
    root = datasets_dir()
    records: dict[str, tuple[list[str], dict[str, float]]] = {}
    if root is not None and name.startswith("ml-"):
        with (root / "movielens-latest-small" / "movies.csv").open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                year = re.search(r"\((\d{4})\)\s*$", row["title"])
                attrs = {"year": float(year.group(1))} if year else {}
                records[row["movieId"]] = (row["genres"].split("|"), attrs)
    elif root is not None and name.startswith("anime-"):
        with (root / "anime" / "anime_info.dat").open(encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                attrs = {}
                for field in ("episodes", "rating", "members"):
                    with contextlib.suppress(ValueError):  # "Unknown": the schema's default
                        attrs[field] = float(row[field])
                genres = [g.strip() for g in row["genre"].split(",") if g.strip()]
                records[row["anime_ids"]] = ([*genres, "type:" + row["type"]], attrs)
    if not records:
        return None, {}, []
    vocabulary: dict[str, int] = {}
    rows, cols = [], []
    for col, item in enumerate(item_ids):
        for category in records.get(item, ([], {}))[0]:
            rows.append(col)
            cols.append(vocabulary.setdefault(category, len(vocabulary)))
    categories = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(item_ids), len(vocabulary))
    )
    attributes = {item: attrs for item, (_, attrs) in records.items()}
    names = sorted({n for attrs in attributes.values() for n in attrs})
    return categories, attributes, names


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The probability that a positive outscores a negative (Mann-Whitney, ties halved)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    positives = labels > 0
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def part_seed(per_source: int, batch: int) -> None:
    """Accuracy and AUC of predicting a held-out rating above 7 (the seed design's 80 %)."""
    import lightgbm

    from recommender.evaluation.data import read_interactions
    from recommender.ranker import linear_blend

    root = datasets_dir()
    if root is None:
        print("skipped: ../shared/datasets is not on this machine", file=sys.stderr)
        return
    data = read_interactions(root / "anime" / "anime_ratings.dat")
    split = PROTOCOLS["random"](data, 42)
    train, test = split.train, split.test
    liked = train.weights > 7
    matrix = sp.csr_matrix(
        (np.ones(int(liked.sum()), np.float32), (train.users[liked], train.items[liked])),
        shape=(train.n_users, train.n_items),
    )
    matrix.sum_duplicates()
    from recommender.models import Sequences, TrainingData

    family = make_family("ease")
    model = family.fit(
        TrainingData(matrix, Sequences.empty(train.n_users)), family.validate(family.defaults())
    )
    popularity = np.bincount(train.items[liked], minlength=train.n_items).astype(np.float32)
    sources = {"ease": model.score, "popular": lambda hs: np.tile(popularity, (len(hs), 1))}
    categories, attributes, names = item_information("anime-ratings", list(train.item_ids))
    times = np.zeros(len(train), np.int64)
    signed = (train.weights - 7.5).astype(np.float32)  # above 7: liked
    context = Context(
        items=item_stats(train.items, times, signed, train.n_items),
        users=user_stats(train.users, times, signed, train.n_users),
        now_ms=0,
        catalogue=ItemInformation(
            categories, attribute_matrix(list(train.item_ids), attributes.get, names), tuple(names)
        ),
    )
    users = np.unique(test.users)
    order = np.argsort(test.users, kind="stable")
    starts = np.searchsorted(test.users[order], users)
    ends = np.r_[starts[1:], order.size]
    pair_cols = [test.items[order][a:b] for a, b in zip(starts, ends, strict=True)]
    pair_labels = [test.weights[order][a:b] > 7 for a, b in zip(starts, ends, strict=True)]
    histories_ = [
        History(matrix.indices[matrix.indptr[u] : matrix.indptr[u + 1]].astype(np.int64),
                matrix.data[matrix.indptr[u] : matrix.indptr[u + 1]], row=int(u))
        for u in users
    ]  # fmt: skip
    tables, labels = [], []
    for lo in range(0, users.size, batch):
        tables.append(
            candidate_table(
                sources, histories_[lo : lo + batch], users[lo : lo + batch], context,
                per_source=per_source, given=pair_cols[lo : lo + batch],
            )
        )  # fmt: skip
        labels.append(np.concatenate(pair_labels[lo : lo + batch]))
    features = np.concatenate([t.features for t in tables])
    label = np.concatenate(labels).astype(np.float32)
    user_of = np.repeat(np.arange(users.size), [c.size for c in pair_cols])
    judged_users = np.random.default_rng(0).random(users.size) < 0.3
    judge = judged_users[user_of]
    names_ = tables[0].names
    schema = FeatureSchema.with_medians(names_, features[~judge])
    filled = schema.fill(features.copy())
    params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 63,
              "min_data_in_leaf": 50, "num_threads": 1, "seed": 0, "verbose": -1}  # fmt: skip
    booster = lightgbm.train(params, lightgbm.Dataset(filled[~judge], label[~judge]), 300)
    predicted = booster.predict(filled[judge])
    truth = label[judge]
    blend = linear_blend(filled[~judge], label[~judge], filled[judge])
    community = filled[judge, names_.index("attr.rating")]
    majority = max(truth.mean(), 1 - truth.mean())
    gains = np.asarray(booster.feature_importance(importance_type="gain"), np.float64)
    top = ", ".join(f"{names_[k]} {gains[k] / gains.sum():.0%}" for k in np.argsort(-gains)[:4])
    print("| predictor | accuracy | AUC |")
    print("| --- | ---: | ---: |")
    print(f"| majority class ({truth.mean():.0%} above 7) | {majority:.1%} | 0.500 |")
    print(f"| the anime's community rating alone | - | {auc(community, truth):.3f} |")
    print(f"| linear blend of the features | {((blend > 0) == truth).mean():.1%} | "
          f"{auc(blend, truth):.3f} |")  # fmt: skip
    print(f"| LightGBM on the features | {((predicted > 0.5) == truth).mean():.1%} | "
          f"{auc(predicted, truth):.3f} |")  # fmt: skip
    print(f"\n{int(judge.sum()):,} held-out ratings of {int(judged_users.sum()):,} users judged, "
          f"{int((~judge).sum()):,} learnt from; top features: {top}")  # fmt: skip


def interval(c: PairedComparison) -> str:
    return f"{c.difference:+.3f} [{c.low:+.3f}, {c.high:+.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="", help="comma-separated data sets (default: all)")
    parser.add_argument("--protocols", default="random,last")
    parser.add_argument("--per-source", type=int, default=100)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--part", choices=["ranking", "seed"], default="ranking")
    args = parser.parse_args()
    limit_blas_threads()
    print(f"Command: `.venv/bin/python bench/ranker.py {' '.join(sys.argv[1:])}`\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}\n"
    )
    if args.part == "seed":
        part_seed(args.per_source, args.batch)
        return
    lines = [
        "| data | protocol | judged users | candidates / user | recall ceiling | first stage "
        "(EASE) | linear blend | lambdarank | difference (95 %) | binary | difference (95 %) | "
        "binary - blend (95 %) | fit s (rows) | top features |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | ---: "
        "| --- |",
    ]
    for dataset in datasets([n for n in args.data.split(",") if n]):
        for protocol in args.protocols.split(","):
            if protocol == "last" and not dataset.ordered:
                continue
            split = PROTOCOLS[protocol](dataset.data, 42)
            t = task(split, dataset)
            train = split.train
            times = (
                train.timestamps.astype(np.int64) * 1000
                if train.timestamps is not None
                else np.zeros(len(train), np.int64)
            )
            family = make_family("ease")
            model = family.fit(t.data, family.validate(family.defaults()))
            popularity = np.bincount(
                train.items[train.weights > 0], minlength=train.n_items
            ).astype(np.float32)
            sources = {
                "ease": model.score,
                "popular": lambda hs, p=popularity: np.tile(p, (len(hs), 1)),
            }
            categories, attributes, names = item_information(dataset.name, list(train.item_ids))
            context = Context(
                items=item_stats(train.items, times, train.weights, train.n_items),
                users=user_stats(train.users, times, train.weights, train.n_users),
                now_ms=int(times.max()) if times.size else 0,
                catalogue=ItemInformation(
                    categories,
                    attribute_matrix(list(train.item_ids), attributes.get, names)
                    if names
                    else None,
                    tuple(names),
                ),
            )
            tables = [
                candidate_table(
                    sources,
                    histories(t.data, t.users[lo : lo + args.batch]),
                    t.users[lo : lo + args.batch],
                    context,
                    per_source=args.per_source,
                )
                for lo in range(0, t.users.size, args.batch)
            ]
            offsets = np.cumsum([0] + [args.batch] * (len(tables) - 1))
            table = type(tables[0])(
                np.concatenate([tb.user + off for tb, off in zip(tables, offsets, strict=True)]),
                np.concatenate([tb.col for tb in tables]),
                np.concatenate([tb.features for tb in tables]),
                tables[0].names,
            )
            cells = []
            for objective in ("lambdarank", "binary"):
                fit = fit_ranker(table, t.truth, first_stage="ease", objective=objective)
                c = fit.comparison
                cells.append((fit, interval(c)))
            (lam, lam_diff), (binary, binary_diff) = cells
            top = ", ".join(f"{k} {v:.0%}" for k, v in list(lam.ranker.importances().items())[:3])
            lines.append(
                f"| {dataset.name} | {protocol} | {lam.comparison.users:,} | "
                f"{table.user.size / t.users.size:.0f} | {lam.recall_ceiling:.0%} | "
                f"{lam.first_stage_ndcg:.3f} | {binary.blend_ndcg:.3f} | {lam.ranker_ndcg:.3f} | "
                f"{lam_diff} | {binary.ranker_ndcg:.3f} | {binary_diff} | "
                f"{interval(binary.against_blend)} | {lam.seconds:.0f} / "
                f"{binary.seconds:.0f} ({lam.rows:,}) | {top} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
