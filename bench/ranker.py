#!/usr/bin/env python3
"""The learned ranker against the first stage alone, on every data set we have, printed as
Markdown: does ranking candidates with features earn its place, and with which objective?

    .venv/bin/python bench/ranker.py                      # every data set, both protocols
    .venv/bin/python bench/ranker.py --data anime-ratings --protocols random --per-source 100

For each data set and protocol: the split of bench/families.py (seed 42): the training events are
what the sources learn (EASE with its defaults, the first stage, and popularity), the test events
are the labels. Candidates: each source's ``--per-source`` best unseen items, with the features of
``recommender.ranker`` (both sources' scores and ranks, item and user stats, category match and
item attributes where the data set has item information: MovieLens genres and year, anime
genres, type, episodes, rating and members). The test users are split 70/30: the ranker learns
on the first part and is compared with the first stage's order on the second, per user
(NDCG@10, paired bootstrap interval), for LightGBM's ``lambdarank`` and ``binary`` objectives,
and with a linear blend (logistic regression on the same features) as the baseline to beat.
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
from recommender.features import attribute_matrix, item_stats, user_stats
from recommender.models import make_family
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


def interval(c: PairedComparison) -> str:
    return f"{c.difference:+.3f} [{c.low:+.3f}, {c.high:+.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="", help="comma-separated data sets (default: all)")
    parser.add_argument("--protocols", default="random,last")
    parser.add_argument("--per-source", type=int, default=100)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    limit_blas_threads()
    print(f"Command: `.venv/bin/python bench/ranker.py {' '.join(sys.argv[1:])}`\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}\n"
    )
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
                item_categories=categories,
                attributes=attribute_matrix(list(train.item_ids), attributes.get, names)
                if names
                else None,
                attribute_names=tuple(names),
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
