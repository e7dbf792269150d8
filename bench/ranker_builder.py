#!/usr/bin/env python3
"""The builder's own ranker on every data set we have, with and without the item catalogue:
does ``--ranker auto`` adopt it, and what does it learn from? Printed as Markdown.

    .venv/bin/python bench/ranker_builder.py
    .venv/bin/python bench/ranker_builder.py --data ml-likes,anime-ratings

For each data set, all its events as the builder's window would hold them
(``recommender.evaluation.daemon.window_events``: the data's times; a seeded shuffle for the
anime files, which have none), and ``train_on_window`` exactly as the builder calls it (ALS with
its defaults as the serving family, each user's newest fifth held out, the family's top 200 as
candidates, 60 trees of 15 leaves, ``auto``): once from the window alone, once with the item
catalogue the demo publishes (``recommender.datasets.load_items``: MovieLens genres and year;
anime genres, type, episodes, rating, members), read through the same ``Catalog`` the builder
uses. ``planted-time-of-life``: the integration test's set (600 users explore 20 items at
random, then settle on 5 of the 30 items whose ``quality`` attribute is 1), scaled up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from families_lib import datasets

from recommender.blas import limit_blas_threads
from recommender.datasets import load_items
from recommender.evaluation.daemon import window_events
from recommender.features import item_information
from recommender.items import Catalog
from recommender.models import make_family
from recommender.ranker.window_fit import train_on_window
from recommender.window import WindowEvents

CATALOGUES = {"ml-likes": "movielens", "ml-ratings": "movielens", "anime-history": "anime",
              "anime-ratings": "anime"}  # fmt: skip


def time_of_life(
    users: int = 3000, items: int = 1000, seed: int = 3
) -> tuple[WindowEvents, Catalog]:
    """Each user's 20 events on items at random, then 5 on items of quality 1 (a tenth)."""
    rng = np.random.default_rng(seed)
    quality = (np.arange(items) % 10 == 0).astype(float)
    good = np.flatnonzero(quality > 0)
    early = np.stack([rng.choice(items, 20, replace=False) for _ in range(users)])
    late = rng.choice(good, (users, 5))
    cols = np.concatenate([early, late], axis=1)
    user = np.repeat(np.arange(users), 25)
    stamps = np.concatenate([np.arange(20), 100 + np.arange(5)])
    events = WindowEvents(
        user.astype(np.int64),
        cols.ravel().astype(np.int64),
        np.ones(user.size, np.float32),
        (np.tile(stamps, users) * 60_000 + np.repeat(np.arange(users), 25)).astype(np.int64),
        [f"u{u}" for u in range(users)],
        [f"i{k}" for k in range(items)],
    )
    catalog = Catalog()
    catalog.update(
        json.dumps(
            {"id": f"i{k}", "categories": [f"shelf {k % 7}"],
             "attributes": {"quality": quality[k], "price": float(rng.uniform(1, 50))}}
        ).encode()
        for k in range(items)
    )  # fmt: skip
    return events, catalog


def dataset_catalog(name: str) -> Catalog | None:
    if name not in CATALOGUES:
        return None
    catalog = Catalog()
    catalog.update(
        json.dumps(
            {"id": info.id, "title": info.title, "categories": list(info.categories),
             "attributes": info.attributes}
        ).encode()
        for info in load_items(CATALOGUES[name])  # type: ignore[arg-type]
    )  # fmt: skip
    return catalog


def row(name: str, events: WindowEvents, catalog: Catalog | None) -> str:
    family = make_family("als")
    params = family.validate({})
    information = None if catalog is None else item_information(events.item_ids, catalog.record)
    started = time.perf_counter()
    outcome = train_on_window(
        events, lambda data: family.fit(data, params), mode="auto", information=information
    )
    seconds = time.perf_counter() - started
    fit = outcome.fit
    if fit is None:
        source = "window + catalogue" if catalog else "window alone"
        return f"| {name} | {source} | - | - | - | - | {outcome.reason} | - |"
    c = fit.comparison
    top = sorted(fit.ranker.importances().items(), key=lambda p: -p[1])[:3]
    return (
        f"| {name} | {'window + catalogue' if catalog else 'window alone'} | {c.users:,} | "
        f"{fit.first_stage_ndcg:.4f} | {fit.ranker_ndcg:.4f} | "
        f"{c.difference:+.4f} [{c.low:+.4f}, {c.high:+.4f}] | "
        f"{'**serves**' if outcome.serve else 'left out'} (linear blend {fit.blend_ndcg:.4f}) | "
        f"{', '.join(f'{k} {v:.0%}' for k, v in top)} ({seconds:.0f} s) |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", default="planted-time-of-life,planted-tastes,ml-likes,anime-history,anime-ratings"
    )
    a = ap.parse_args()
    limit_blas_threads()
    print(f"`.venv/bin/python {' '.join(sys.argv)}` ({time.strftime('%Y-%m-%d')})\n")
    print(
        "| data | features from | held-out users | ALS's order NDCG@10 | ranker | "
        "difference (95 %) | `auto` | top features by gain (fit) |\n"
        "| --- | --- | ---: | ---: | ---: | --- | --- | --- |",
        flush=True,
    )
    for name in a.data.split(","):
        if name == "planted-time-of-life":
            events, catalog = time_of_life()
        else:
            found = datasets([name])
            if not found:
                continue
            events = window_events(found[0].data, binary=found[0].binary)
            catalog = dataset_catalog(name)
        print(row(name, events, None), flush=True)
        if catalog is not None:
            print(row(name, events, catalog), flush=True)


if __name__ == "__main__":
    main()
