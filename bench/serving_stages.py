#!/usr/bin/env python3
"""What each stage of the serving pipeline costs a request, in process (issue 20).

    .venv/bin/python bench/serving_stages.py                    # 20k and 200k items, ALS
    .venv/bin/python bench/serving_stages.py --sizes 20000 --requests 3000

For each catalogue size: a synthetic ALS snapshot (64 factors; an HNSW graph from 50,000 items
on, as the server builds it), a catalogue with 1 % of the items hidden and 32 categories, a
pipeline as the server makes it. Then, for the same known users, the median microseconds of each
stage of `/recommend?user=&n=10` called one request at a time, one BLAS thread: query (the
user's history or vector), candidates (every item's score: the batched product, here a batch of
one), rules (the request's mask from the cached catalogue columns), ranking (select the top the
rules allow, merge new items), mixing (team draft of two arms' lists) and the exposure record
(its id and encoding, no Kafka). The sum is what the pipeline adds to a request besides HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from recommender.blas import limit_blas_threads  # noqa: E402
from recommender.items import Catalog  # noqa: E402
from recommender.items.fresh import FreshItems  # noqa: E402
from recommender.online.experiments import ExperimentSpec  # noqa: E402
from recommender.online.exposures import Exposure, encode_exposure  # noqa: E402
from recommender.serving.candidates import generate  # noqa: E402
from recommender.serving.index import AnnSettings  # noqa: E402
from recommender.serving.mixing import mix  # noqa: E402
from recommender.serving.model import RecommenderModel  # noqa: E402
from recommender.serving.pipeline import ModelPipeline  # noqa: E402
from recommender.serving.query import Ask, resolve  # noqa: E402
from recommender.serving.ranking import select  # noqa: E402
from recommender.snapshot import snapshot_in_memory  # noqa: E402
from recommender.synthetic import random_snapshot_arrays  # noqa: E402

STAGES = ("query", "candidates", "rules", "ranking", "mixing", "exposure")


def build(n_items: int) -> tuple[ModelPipeline, Catalog]:
    n_users = 20_000
    arrays = random_snapshot_arrays(n_users, n_items, factors=64, seed=1)
    users, items = [f"u{k}" for k in range(n_users)], [f"i{k}" for k in range(n_items)]
    snapshot = snapshot_in_memory(1, arrays, {"params": {"factors": 64}}, users, items)
    model = RecommenderModel(snapshot, ann=AnnSettings(threshold=50_000))
    catalog = Catalog()
    rng = np.random.default_rng(2)
    records = [
        {"id": f"i{k}", "categories": [f"c{k % 32}"], "hidden": bool(rng.random() < 0.01)}
        for k in range(n_items)
    ]
    catalog.apply([json.dumps(r).encode() for r in records])
    new_items = FreshItems(catalog)
    new_items.rebase(model)
    pipeline = ModelPipeline(model, catalog=catalog, new_items=new_items)
    pipeline.visibility.warm()
    return pipeline, catalog


async def measure(pipeline: ModelPipeline, requests: int) -> dict[str, float]:
    model = pipeline.model

    async def score(m: RecommenderModel, key: object) -> np.ndarray:
        return m.score_many([key])[0]  # type: ignore[list-item]

    spec = ExperimentSpec.start("interleave", 0.5)
    timings: dict[str, list[float]] = {stage: [] for stage in STAGES}
    rng = np.random.default_rng(3)
    for row in rng.integers(0, model.n_users, requests).tolist():
        ask = Ask(kind="user", route="/recommend", n=10, user=model.user_ids[row])
        t0 = time.perf_counter()
        query = resolve(model, ask)
        t1 = time.perf_counter()
        found = await generate(model, pipeline.new_items.view, query, score)
        t2 = time.perf_counter()
        mask = pipeline.visibility.mask(ask.item_filter, ask.seen)
        t3 = time.perf_counter()
        answer = select(model, found, mask, explore=0.0)
        t4 = time.perf_counter()
        mixed = mix(spec, ask.user or "", {"champion": answer, "challenger": answer}, 10, "s")
        t5 = time.perf_counter()
        encode_exposure(
            Exposure(
                id="r" * 16,
                timestamp_ms=0,
                user=ask.user,
                items=tuple(s.item for s in mixed.items),
                route="/recommend",
                model_version=1,
                family="als",
                credit=tuple(mixed.credit or ()),
            )
        )
        t6 = time.perf_counter()
        for stage, (a, b) in zip(
            STAGES, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)], strict=True
        ):
            timings[stage].append((b - a) * 1e6)
    return {stage: statistics.median(values) for stage, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    limit_blas_threads()
    print(f"`{' '.join(['python', *sys.argv])}` on {platform.node()}, one BLAS thread\n")
    print("| items | " + " | ".join(STAGES) + " | sum (µs) |")
    print("| ---: | " + " | ".join("---:" for _ in STAGES) + " | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        pipeline, _ = build(size)
        figures = asyncio.run(measure(pipeline, args.requests))
        cells = " | ".join(f"{figures[s]:.0f}" for s in STAGES)
        print(f"| {size:,} | {cells} | {sum(figures.values()):.0f} |")


if __name__ == "__main__":
    main()
