#!/usr/bin/env python3
"""Benchmarks of the catalogue rules and new items, printed as Markdown (for BENCHMARKS.md).

    .venv/bin/python bench/catalogue.py                 # all three (about 2 minutes)
    .venv/bin/python bench/catalogue.py --only filter   # filtered vs unfiltered answers
    .venv/bin/python bench/catalogue.py --only foldin   # item fold-in per updated item
    .venv/bin/python bench/catalogue.py --only fresh    # time until a new item is recommendable

Uses the embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set (``fresh`` only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import bench_kafka, report, start_server, wait_http  # noqa: E402

from recommender.blas import limit_blas_threads  # noqa: E402
from recommender.broker import free_port  # noqa: E402
from recommender.events import format_event, parse_values  # noqa: E402
from recommender.items import Catalog, ItemFilter  # noqa: E402
from recommender.items.fresh import FreshItems  # noqa: E402
from recommender.kafka import KafkaSettings, create_topic  # noqa: E402
from recommender.models.als_training import AlsParams, train_als  # noqa: E402
from recommender.serving.index import AnnSettings  # noqa: E402
from recommender.serving.model import RecommenderModel  # noqa: E402
from recommender.serving.rules import Visibility  # noqa: E402
from recommender.snapshot import (  # noqa: E402
    load_snapshot,
    publish_snapshot,
    snapshot_arrays,
)
from recommender.synthetic import TasteModel, random_snapshot_arrays  # noqa: E402
from recommender.window import InteractionWindow  # noqa: E402


def bench_filter(items: int, queries: int) -> None:
    """A 1 %-of-catalogue category against no filter, through the model's answer path (graph
    search above 50,000 items), in one process."""
    with tempfile.TemporaryDirectory() as tmp:
        arrays = random_snapshot_arrays(n_users=20_000, n_items=items, factors=64, seed=1)
        publish_snapshot(Path(tmp), 1, arrays, {"topic": "bench"})
        model = RecommenderModel(load_snapshot(Path(tmp) / "v000000000001"), ann=AnnSettings())
    catalog = Catalog()
    rng = np.random.default_rng(2)
    category = rng.choice(items, items // 100, replace=False)
    in_category = set(category.tolist())
    catalog.update(
        [
            json.dumps(
                {"id": model.item_ids[k], "categories": ["rare" if k in in_category else "common"]}
            ).encode()
            for k in range(items)
        ]
    )
    users = rng.integers(0, model.n_users, queries)
    timings: dict[str, list[float]] = {"unfiltered": [], "category (1 %)": []}
    visibility = Visibility(catalog, model.item_index)  # the server's per-model rules cache
    for name, item_filter in (
        ("unfiltered", None),
        ("category (1 %)", ItemFilter(frozenset({"rare"}))),
    ):
        for row in users.tolist():
            started = time.perf_counter()
            banned, allowed = visibility.columns(item_filter)
            query = model.query_for_user(model.user_ids[row], 10)
            answer = model.answer(query, excluded=banned, allowed=allowed)
            timings[name].append(time.perf_counter() - started)
            assert len(answer.items) == 10
            if item_filter is not None:
                assert all(model.item_index[s.item] in in_category for s in answer.items)
    report(
        f"### Filtered answers: {items:,} items "
        f"({'HNSW graph' if model.approximate else 'exact'}), {queries:,} users, in process"
    )
    report()
    report("| request | p50 ms | p99 ms |")
    report("| --- | ---: | ---: |")
    p99 = {}
    for name, values in timings.items():
        ms = np.asarray(values) * 1000
        p99[name] = float(np.percentile(ms, 99))
        report(f"| {name} | {np.percentile(ms, 50):.3f} | {p99[name]:.3f} |")
    report()
    report(f"Filtered p99 / unfiltered p99: {p99['category (1 %)'] / p99['unfiltered']:.2f}.")
    report()


def bench_foldin(items: int) -> None:
    """Item fold-in of new items with 20 events each from known users (64 factors)."""
    with tempfile.TemporaryDirectory() as tmp:
        arrays = random_snapshot_arrays(n_users=50_000, n_items=20_000, factors=64, seed=3)
        publish_snapshot(
            Path(tmp),
            1,
            arrays,
            {"topic": "bench", "params": {"alpha": 4.0, "regularization": 32.0}},
        )
        model = RecommenderModel(load_snapshot(Path(tmp) / "v000000000001"))
    fresh = FreshItems(Catalog(), max_items=items)
    fresh.rebase(model)
    rng = np.random.default_rng(4)
    events = [
        (model.user_ids[int(u)], f"new-{k}", 1.0)
        for k in range(items)
        for u in rng.integers(0, model.n_users, 20)
    ]
    fresh.add_events(events, model.item_index)
    started = time.perf_counter()
    fresh.refresh(model)
    seconds = time.perf_counter() - started
    report(f"### Item fold-in: {items:,} new items, 20 events each, 64 factors")
    report()
    report(
        f"{1e3 * seconds / items:.3f} ms per updated item ({seconds:.2f} s for all, view of "
        f"{fresh.view.size:,} items)."
    )
    report()


def bench_fresh(kafka: KafkaSettings, probes: int) -> None:
    """A real server following Kafka: 20 events of a new item from one taste group's users,
    then /recommend for another user of that group polled until the item shows."""
    # A group per probe: each new item competes with its group's items, not with earlier
    # probes' new items for the reserved slots.
    taste = TasteModel(users=4000, items=1000, groups=max(8, probes))
    with tempfile.TemporaryDirectory() as tmp:
        topic = f"bench-fresh-{uuid.uuid4().hex[:8]}"
        create_topic(kafka, topic, partitions=4)
        window = InteractionWindow(1_000_000)
        users, items = taste.sample(50_000, np.random.default_rng(5))
        batch = parse_values(
            [format_event(f"u{u}", f"i{i}") for u, i in zip(users, items, strict=True)]
        )
        n = len(batch)
        window.append(
            batch,
            timestamps_ms=np.arange(n, dtype=np.int64),
            partitions=np.zeros(n, np.int64),
            offsets=np.arange(n, dtype=np.int64),
        )
        matrix = window.matrix()
        params = AlsParams(factors=32, iterations=10)
        fitted = train_als(matrix.user_items, params)
        publish_snapshot(
            Path(tmp),
            1,
            snapshot_arrays(matrix, fitted),
            {"topic": topic, "params": params.to_dict(), "partitions": {}},
        )
        port = free_port()
        server = start_server(
            tmp,
            port,
            "--bootstrap-servers",
            kafka.bootstrap_servers,
            "--topic",
            topic,
            "--exposures-topic",
            "off",
            "--explore",
            "0.1",
        )
        producer = kafka.producer(**{"linger.ms": 1})
        delays = []
        try:
            wait_http(f"http://127.0.0.1:{port}/ready")
            time.sleep(2)
            for k in range(probes):
                group = k % taste.groups
                item = f"new-{k}"
                clickers = [f"u{u}" for u in range(group, 2000, taste.groups)][:20]
                viewer = f"u{group + 2000 + taste.groups * k}"
                started = time.perf_counter()
                for user in clickers:
                    producer.produce(topic, value=f"{user}:{item}".encode(), key=user.encode())
                producer.flush(10)
                while time.perf_counter() - started < 20:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/recommend?user={viewer}&n=20", timeout=5
                    ) as response:
                        body = json.loads(response.read())
                    if item in [i["item"] for i in body["items"]]:
                        delays.append(time.perf_counter() - started)
                        break
                    time.sleep(0.02)
        finally:
            server.terminate()
            server.wait()
    found = np.asarray(delays) * 1000
    report(
        f"### New items: time from their 20 events to /recommend (n=20, --explore 0.1) of "
        f"another user of their taste group, {probes} probes"
    )
    report()
    if found.size:
        report(
            f"recommendable in {found.size} of {probes}; p50 {np.percentile(found, 50):.0f} ms, "
            f"p95 {np.percentile(found, 95):.0f} ms, max {found.max():.0f} ms."
        )
    else:
        report(f"recommendable in 0 of {probes} within 20 s.")
    report()


def main() -> None:
    limit_blas_threads()  # as the server does: one BLAS thread serves faster here
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["filter", "foldin", "fresh"], action="append")
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()
    sections = set(args.only or ["filter", "foldin", "fresh"])
    report(f"Command: `{' '.join(['.venv/bin/python', 'bench/catalogue.py', *sys.argv[1:]])}`")
    report()
    report(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    report()
    if "filter" in sections:
        bench_filter(args.items, args.queries)
    if "foldin" in sections:
        bench_foldin(1000)
    if "fresh" in sections:
        with bench_kafka() as kafka:
            bench_fresh(kafka, args.probes)


if __name__ == "__main__":
    main()
