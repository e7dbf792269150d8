#!/usr/bin/env python3
"""What the learned ranking stage costs (issue 22): its fit against the window's size, what it
adds to a request in process, and `/recommend`'s rate with and without it from the same server.

    .venv/bin/python bench/ranking_stage.py                     # windows 50k,200k; 20k items
    .venv/bin/python bench/ranking_stage.py --windows 50000 --seconds 10 --rounds 3

1. Fit: for each window size, a synthetic window (bench/scale.py's `fill_window`: taste groups,
   users x items as given), `train_on_window` with ALS (64 factors, its defaults) as the family,
   `--ranker on`: seconds and the process's peak RSS growth (ru_maxrss) over the fit.
2. In process, for the largest window's snapshot (ALS plus the ranker, written and loaded as the
   server does): the median microseconds of `ModelPipeline.answer` for the same known users,
   `/recommend?user=&n=10`, one at a time, one BLAS thread, with the ranker (the family's top 200
   items reordered) and without; and of the ranking stage alone (features and LightGBM on 200
   rows).
3. HTTP: `recommender serve` on that snapshot with `--ranker off` and with `--ranker on` at each
   of `--candidates` (`--ranker-candidates`), on their own ports, one BLAS thread each; rounds
   alternate (every other round in reverse order) of `/recommend?user=...&n=10` from 16
   concurrent clients (bench/run.py's load loop). The rate with the ranker over the rate
   without, per round; the median.
4. Freshness of the user features (`--probes`, 0: skipped): bench/run.py's probes (a builder
   with `--ranker on` retraining every 5 s under 2,000 events/s of background load, a server
   following the topic), started once a ranker serves: one event of a new user, `/recommend`
   polled until its answer counts it. The ranker's user features are computed in that request
   from the same fresh events (`test_ranking_stage.py`), so this is their freshness.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from run import load, start_server, wait_http  # noqa: E402
from scale import fill_window  # noqa: E402

from recommender.blas import limit_blas_threads  # noqa: E402
from recommender.broker import free_port  # noqa: E402
from recommender.items import Catalog  # noqa: E402
from recommender.items.fresh import FreshItems  # noqa: E402
from recommender.models import make_family  # noqa: E402
from recommender.ranker.window_fit import train_on_window, window_features  # noqa: E402
from recommender.serving.learned import LearnedRanking  # noqa: E402
from recommender.serving.model import RecommenderModel  # noqa: E402
from recommender.serving.pipeline import ModelPipeline  # noqa: E402
from recommender.serving.query import Ask  # noqa: E402
from recommender.snapshot import (  # noqa: E402
    load_snapshot,
    publish_snapshot,
    ranker_arrays,
    snapshot_arrays,
)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit(total: int, users: int, items: int, model_dir: Path | None) -> tuple[float, float]:
    window, _ = fill_window(total, users, items)
    events = window.events()  # timestamps 1 ms apart: a user's events ~users ms apart
    family = make_family("als")
    params = family.validate({})
    before = rss_mb()
    started = time.perf_counter()
    outcome = train_on_window(events, lambda d: family.fit(d, params), mode="on")
    seconds = time.perf_counter() - started
    grown = rss_mb() - before
    assert outcome.fit is not None
    print(
        f"fit  window {total:>9,} events  {outcome.fit.rows:>9,} rows  {seconds:6.1f} s  "
        f"peak RSS +{grown:6.0f} MB  ranker NDCG@10 {outcome.fit.ranker_ndcg:.4f} vs family "
        f"{outcome.fit.first_stage_ndcg:.4f}",
        flush=True,
    )
    if model_dir is not None:
        matrix = window.matrix()
        fitted = family.fit(matrix.training_data(), params)
        extra, section = ranker_arrays(outcome, window_features(events))
        manifest = {
            "topic": "bench",
            "model": {"family": "als", "params": params},
            "params": params,
            "ranker": section,
        }
        publish_snapshot(model_dir, 1, snapshot_arrays(matrix, fitted, extra=extra), manifest)
    return seconds, grown


async def in_process(model_dir: Path, requests: int) -> None:
    snapshot = load_snapshot(model_dir / "v000000000001")
    model = RecommenderModel(snapshot)
    ranking = LearnedRanking.of(model)
    assert ranking is not None
    catalog = Catalog()
    plain = ModelPipeline(model, catalog=catalog, new_items=FreshItems(catalog))
    ranked = ModelPipeline(model, catalog=catalog, new_items=FreshItems(catalog), ranker=ranking)

    async def score(m: RecommenderModel, key: object) -> np.ndarray:  # a batch of one
        return m.score_many([key])[0]  # type: ignore[list-item]

    users = [f"u{k}" for k in range(requests)]
    times: dict[str, list[float]] = {"without": [], "with": [], "stage": []}
    for user in users:
        ask = Ask(kind="user", route="/recommend", n=10, user=user)
        for name, pipeline in (("without", plain), ("with", ranked)):
            started = time.perf_counter()
            await pipeline.answer(ask, score)
            times[name].append(time.perf_counter() - started)
        wide = Ask(kind="user", route="/recommend", n=200, user=user)
        answer = await plain.answer(wide, score)
        started = time.perf_counter()
        ranking.rank_many([ask], [answer])  # 200 candidates, the best 10
        times["stage"].append(time.perf_counter() - started)
    us = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    print(
        f"in process, {requests} known users, median µs: pipeline without the ranker "
        f"{us['without']:.0f}, with it {us['with']:.0f} (+{us['with'] - us['without']:.0f}); "
        f"the ranking stage alone at 200 candidates {us['stage']:.0f}",
        flush=True,
    )


def http(model_dir: Path, seconds: float, rounds: int, users: int, counts: list[int]) -> None:
    modes = {"off": ("--ranker", "off")}
    modes.update({f"on@{n}": ("--ranker", "on", "--ranker-candidates", str(n)) for n in counts})
    ports = {mode: free_port() for mode in modes}
    servers = {
        mode: start_server(str(model_dir), ports[mode], *args) for mode, args in modes.items()
    }
    try:
        for port in ports.values():
            wait_http(f"http://127.0.0.1:{port}/ready", timeout=120)
        rates: dict[str, list[float]] = {mode: [] for mode in modes}

        def url(port: int):
            return lambda k: f"http://127.0.0.1:{port}/recommend?user=u{k % users}&n=10"

        for port in ports.values():  # warm-up
            asyncio.run(load(url(port), 2.0, 16))
        for r in range(rounds):
            order = list(ports.items()) if r % 2 == 0 else list(ports.items())[::-1]
            for mode, port in order:
                done, _, errors = asyncio.run(load(url(port), seconds, 16))
                assert errors == 0, f"{errors} errors with {mode}"
                rates[mode].append(done / seconds)
        for mode in modes:
            if mode == "off":
                continue
            ratios = [on / off for on, off in zip(rates[mode], rates["off"], strict=True)]
            print(
                f"HTTP /recommend, {rounds} rounds of {seconds:.0f} s, 16 clients: ranker "
                f"{mode.split('@')[1]} candidates {statistics.median(rates[mode]):.0f} req/s, "
                f"without {statistics.median(rates['off']):.0f} req/s; with/without per round "
                f"{', '.join(f'{x:.2f}' for x in ratios)}, median "
                f"{statistics.median(ratios):.2f}",
                flush=True,
            )
    finally:
        for proc in servers.values():
            proc.terminate()
            proc.wait(30)


def freshness(probes: int) -> None:
    import json
    import urllib.request

    from run import bench_kafka, measure_freshness

    def ranker_serves(base: str) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{base}/status") as r:
                ranker = (json.loads(r.read()).get("model") or {}).get("ranker") or {}
            if ranker.get("serves"):
                return
            time.sleep(0.5)
        raise RuntimeError("no ranker served within 300 s")

    with bench_kafka() as kafka:
        ms, versions = measure_freshness(
            kafka,
            probes,
            2000.0,
            ("--ranker", "on", "--ranker-interval", "1m"),
            ready_timeout=120,
            wait_for=ranker_serves,
        )
    print(
        f"freshness with the ranker serving, {probes} probes: p50 {np.percentile(ms, 50):.0f} ms, "
        f"p99 {np.percentile(ms, 99):.0f} ms, max {ms.max():.0f} ms ({versions} model swaps)",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", default="50000,200000")
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--candidates", default="200,100,50", help="--ranker-candidates in HTTP")
    ap.add_argument("--probes", type=int, default=200, help="freshness probes (0: none)")
    a = ap.parse_args()
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"  # the servers' too
    limit_blas_threads()
    print(f"{' '.join(sys.argv)}  ({platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d')})", flush=True)  # fmt: skip
    sizes = [int(s) for s in a.windows.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        for size in sizes:
            fit(size, a.users, a.items, model_dir if size == sizes[-1] else None)
        asyncio.run(in_process(model_dir, a.requests))
        http(model_dir, a.seconds, a.rounds, a.users, [int(n) for n in a.candidates.split(",")])
    if a.probes:
        freshness(a.probes)


if __name__ == "__main__":
    main()
