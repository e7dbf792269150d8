#!/usr/bin/env python3
"""Serving cost of every model family (issue 15), printed as Markdown (for BENCHMARKS.md).

    .venv/bin/python bench/families_serving.py                  # everything (about 15 minutes)
    .venv/bin/python bench/families_serving.py --only http      # sections: http, fresh
    .venv/bin/python bench/families_serving.py --sizes 20000 --families als,knn

For each catalogue size, one synthetic window (bench/scale.py's: taste groups, nearly every item
occurs, about 30 events a user); every family fitted on it with its defaults and published as a
snapshot; its size, load time (verify + mmap, then the model the server builds: ALS's HNSW graph
above 50,000 items); then one `recommender serve` per family on 127.0.0.1, all started together,
and `/recommend?n=10` for the same users (20-50 window items each) from 16 concurrent clients
(bench/run.py's load loop), rounds interleaved across families. EASE only at the smallest size:
its dense items x items matrix is 4 n² bytes. Freshness: bench/run.py's freshness probes with the
builder pinned to each family (`--model FAMILY`). Ratios compare families measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from run import bench_kafka, cpu_seconds, load, measure_freshness, report, start_server, wait_http  # noqa: E402
from scale import fill_window  # noqa: E402

from recommender.blas import limit_blas_threads  # noqa: E402
from recommender.broker import free_port  # noqa: E402
from recommender.evaluation.families import LABELS  # noqa: E402
from recommender.kafka import KafkaSettings  # noqa: E402
from recommender.models import FAMILIES, make_family  # noqa: E402
from recommender.serving.index import AnnSettings  # noqa: E402
from recommender.serving.model import RecommenderModel  # noqa: E402
from recommender.snapshot import (  # noqa: E402
    load_snapshot,
    publish_snapshot,
    snapshot_arrays,
)

EASE_MAX_ITEMS = 20_000  # B is 4 n² bytes: 1.5 GiB at 20k items, 149 GiB at 200k


def median_s(fn, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


def build_snapshots(
    root: Path, items: int, users: int, events: int, families: list[str], repeats: int
) -> tuple[dict[str, Path], list[str], list[list[str]], dict[str, Any]]:
    """Fit every family on one window and publish each; report sizes and load times. Returns
    (model dir per family, the request users, their window items, facts about the window)."""
    window, _ = fill_window(events, users, items)
    matrix = window.matrix()
    data = matrix.training_data()
    seen = matrix.user_items
    lengths = np.diff(seen.indptr)
    rng = np.random.default_rng(7)
    rows = rng.permutation(np.flatnonzero((lengths >= 20) & (lengths <= 50)))[:5000]
    request_users = [matrix.user_ids[r] for r in rows.tolist()]
    sessions = [
        [matrix.item_ids[c] for c in seen.indices[seen.indptr[r] : seen.indptr[r + 1]][:30]]
        for r in rows.tolist()
    ]
    facts = {
        "events": events,
        "users": len(matrix.user_ids),
        "items": len(matrix.item_ids),
        "pairs": int(seen.nnz),
        "history": int(np.median(lengths[rows])),
        "history_all": int(np.median(lengths)),
    }
    dirs: dict[str, Path] = {}
    rows_out = []
    for family in families:
        if family == "ease" and len(matrix.item_ids) > EASE_MAX_ITEMS:
            continue
        trainer = make_family(family)
        params = trainer.validate(trainer.defaults())
        started = time.perf_counter()
        fitted = trainer.fit(data, params)
        fit_s = time.perf_counter() - started
        arrays = snapshot_arrays(matrix, fitted)
        del fitted
        model_dir = root / f"{family}-{items}"
        manifest = {
            "topic": "bench",
            "model": {"family": family, "params": params},
            "params": params,
        }
        started = time.perf_counter()
        publish_snapshot(model_dir, 1, arrays, manifest)
        publish_s = time.perf_counter() - started
        del arrays
        path = model_dir / "v000000000001"
        size = sum(f.stat().st_size for f in path.iterdir())
        own = sum((path / f"{name}.npy").stat().st_size for name in FAMILIES[family][1].ARRAYS)
        load_s, snapshot = median_s(lambda p=path: load_snapshot(p), repeats)
        build_s, model = median_s(
            lambda s=snapshot: RecommenderModel(s, ann=AnnSettings()), repeats
        )
        assert model.family == family, (model.family, family)
        graph = "HNSW graph" if model.approximate else "exact"
        del model, snapshot
        dirs[family] = model_dir
        rows_out.append(
            f"| {LABELS[family]} | {fit_s:.1f} | {size / 2**20:,.1f} | {own / 2**20:,.1f} | "
            f"{publish_s:.2f} | {load_s:.3f} | {build_s:.3f} ({graph}) |"
        )
    report(
        f"### Snapshots at {facts['items']:,} items ({facts['users']:,} users, "
        f"{facts['pairs']:,} user-item pairs from {events:,} events)"
    )
    report()
    report(
        "| family | fit s (defaults, one BLAS thread) | snapshot MiB | of which the family's own "
        "arrays | publish s | load s (verify SHA-256 + mmap) | model build s (what the server "
        f"does next; median of {repeats}) |"
    )
    report("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows_out:
        report(row)
    if "ease" in families and "ease" not in dirs:
        n = facts["items"]
        report(
            f"| EASE | not run: B alone would be {4 * n * n / 2**30:,.0f} GiB "
            f"(4 n² bytes at {n:,} items) | | | | | |"
        )
    report()
    return dirs, request_users, sessions, facts


def http_rounds(
    dirs: dict[str, Path],
    users: list[str],
    sessions: list[list[str]],
    seconds: float,
    rounds: int,
    concurrency: int,
) -> dict[tuple[str, str], dict[str, float]]:
    """One server per family, all up at once; rounds interleaved across families and cases."""
    import json

    ports = {family: free_port() for family in dirs}
    procs = {family: start_server(str(d), ports[family]) for family, d in dirs.items()}
    cases = {
        "known user": lambda port: (
            lambda k: f"http://127.0.0.1:{port}/recommend?user={users[k * 7919 % len(users)]}&n=10"
        ),
        "session (items=, 20-30 items)": lambda port: (
            lambda k: (
                f"http://127.0.0.1:{port}/recommend?items="
                f"{','.join(sessions[k * 7919 % len(sessions)])}&n=10"
            )
        ),
    }
    results: dict[tuple[str, str], list[tuple[int, list[float], int]]] = {}
    cpu_us: dict[tuple[str, str], list[float]] = {}
    try:
        for family, port in ports.items():
            wait_http(f"http://127.0.0.1:{port}/ready", timeout=900)
            for case, url_for in cases.items():  # every route answers before it is timed
                with urllib.request.urlopen(url_for(port)(0), timeout=10) as r:
                    body = json.loads(r.read())
                expected = "personalised" if case == "known user" else "fold-in"
                if r.status != 200 or len(body["items"]) != 10 or body["source"] != expected:
                    raise RuntimeError(f"{family} {case}: {r.status} {body}")
        time.sleep(1)
        for _ in range(rounds):
            for family, port in ports.items():
                for case, url_for in cases.items():
                    pid = procs[family].pid
                    before = cpu_seconds(pid)
                    run = asyncio.run(load(url_for(port), seconds, concurrency))
                    used = cpu_seconds(pid) - before
                    results.setdefault((family, case), []).append(run)
                    cpu_us.setdefault((family, case), []).append(1e6 * used / max(1, run[0]))
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait()
    out = {}
    for key, runs in results.items():
        lat = np.concatenate([np.asarray(latencies) for _, latencies, _ in runs]) * 1000
        out[key] = {
            "rps": statistics.median(count / seconds for count, _, _ in runs),
            "runs": [count / seconds for count, _, _ in runs],
            "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)),
            "errors": sum(e for *_, e in runs),
            "cpu_us": statistics.median(cpu_us[key]),
        }
    return out


def report_http(
    facts: dict[str, Any], results: dict[tuple[str, str], dict[str, float]], args
) -> None:
    report(
        f"### `/recommend?n=10` at {facts['items']:,} items: {args.concurrency} concurrent "
        f"clients (one aiohttp process on the same 2 cores), {args.seconds:.0f} s a round, "
        f"{args.rounds} rounds interleaved across families"
    )
    report()
    report(
        f"Known users: the same 5,000 users for every family, {facts['history']} window items "
        f"each (median; 20-50); sessions: up to 30 of the same users' items as `items=` (ALS "
        "folds a vector in; the item-item families score a history either way)."
    )
    report()
    report(
        "| family | request | req/s (median) | vs ALS | rounds | p50 ms | p99 ms | errors | "
        "server CPU µs a request | vs ALS |"
    )
    report("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for (family, case), r in results.items():
        als = results.get(("als", case))
        vs = f"{r['rps'] / als['rps']:.2f}" if als else "-"
        cpu_vs = f"{r['cpu_us'] / als['cpu_us']:.2f}" if als else "-"
        rounds = ", ".join(f"{v:,.0f}" for v in r["runs"])
        report(
            f"| {LABELS[family]} | {case} | {r['rps']:,.0f} | {vs} | {rounds} | {r['p50']:.2f} | "
            f"{r['p99']:.2f} | {r['errors']} | {r['cpu_us']:,.0f} | {cpu_vs} |"
        )
    report()


def bench_fresh(kafka: KafkaSettings, families: list[str], probes: int, rate: float) -> None:
    rows = []
    for family in families:
        started = time.perf_counter()
        lat, versions = measure_freshness(
            kafka, probes, rate, ("--model", family), ready_timeout=900
        )
        took = time.perf_counter() - started
        p99 = np.percentile(lat, 99)
        rows.append(
            f"| {LABELS[family]} | {np.percentile(lat, 50):.0f} | {np.percentile(lat, 95):.0f} | "
            f"{p99:.0f} | {lat.max():.0f} | {versions} | {'met' if p99 < 50 else '**not met**'} "
            f"| {took:.0f} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
    report(
        f"### Freshness per family: event produced -> reflected in `/recommend` ({probes} probes "
        "each)"
    )
    report()
    report(
        "bench/run.py's freshness probes (`measure_freshness`): a builder pinned with `--model "
        "FAMILY` on a 200,000-event window of 50,000 users and 20,000 items (`--retrain-interval "
        f"5`, quality gate on, its default), a server following the topic, {rate:,.0f} events/s "
        "of background load; each probe produces one event of a new user and polls "
        "`/recommend` every 5 ms until it counts (`fresh_events` >= 1)."
    )
    report()
    report(
        "| family | p50 ms | p95 ms | p99 ms | max ms | models swapped in during the probes "
        "| p99 < 50 ms | section s (first model included) |"
    )
    report("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for row in rows:
        report(row)
    report()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["http", "fresh"], action="append")
    parser.add_argument("--sizes", default="20000,200000", help="catalogue sizes, items")
    parser.add_argument("--families", default=",".join(LABELS), help="comma-separated")
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=1_500_000, help="window events")
    parser.add_argument("--repeats", type=int, default=3, help="snapshot loads")
    parser.add_argument("--seconds", type=float, default=4.0, help="HTTP load per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--probes", type=int, default=100, help="freshness probes per family")
    parser.add_argument("--background-rate", type=float, default=2000, help="events/s")
    args = parser.parse_args()
    limit_blas_threads()  # fits as the builder runs them (and the server scores)
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in LABELS]
    if unknown:
        parser.error(f"unknown families: {', '.join(unknown)}")
    sections = set(args.only or ["http", "fresh"])
    command = ".venv/bin/python bench/families_serving.py"
    report(f"Command: `{' '.join([command, *sys.argv[1:]])}`")
    report()
    report(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    report()
    if "http" in sections:
        for items in (int(s) for s in args.sizes.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                dirs, users, sessions, facts = build_snapshots(
                    Path(tmp), items, args.users, args.events, families, args.repeats
                )
                results = http_rounds(
                    dirs, users, sessions, args.seconds, args.rounds, args.concurrency
                )
            report_http(facts, results, args)
    if "fresh" in sections:
        with bench_kafka() as kafka:
            bench_fresh(kafka, families, args.probes, args.background_rate)


if __name__ == "__main__":
    main()
