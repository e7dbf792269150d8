#!/usr/bin/env python3
"""Benchmarks of the hot paths, printed as one Markdown report (copy it into BENCHMARKS.md).

    .venv/bin/python bench/run.py                 # everything (about 2-3 minutes)
    .venv/bin/python bench/run.py --only ingest   # one section: ingest, train, snapshot, http

Uses the embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set. Figures are medians of repeats
measured in this one run; ratios compare runs made the same way, back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.broker import EmbeddedBroker, free_port  # noqa: E402
from recommender.builder import BuilderConfig, ModelBuilder, snapshot_arrays  # noqa: E402
from recommender.kafka import KafkaSettings, create_topic  # noqa: E402
from recommender.model import RecommenderModel  # noqa: E402
from recommender.snapshot import load_snapshot, publish_snapshot  # noqa: E402
from recommender.synthetic import TasteModel  # noqa: E402
from recommender.training import AlsParams, train_als  # noqa: E402
from recommender.window import InteractionWindow  # noqa: E402

TASTE = TasteModel(users=50_000, items=20_000, groups=50)
lines: list[str] = []


def report(text: str = "") -> None:
    print(text, flush=True)
    lines.append(text)


def median_of(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def events(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return TASTE.sample(count, np.random.default_rng(seed))


# -- ingest ---------------------------------------------------------------------------------------


def consume_all(
    kafka: KafkaSettings, topic: str, partitions: int, total: int, handle, batch_size: int
) -> tuple[float, float]:
    """Consume ``total`` events through ``handle``: (wall seconds, seconds inside handle)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    consumer = kafka.consumer(**{"fetch.wait.max.ms": 10})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    seen = 0
    handling = 0.0
    started = time.perf_counter()
    deadline = time.monotonic() + 120
    while seen < total and time.monotonic() < deadline:
        batch = consumer.consume(batch_size, timeout=1.0)
        if batch:
            t = time.perf_counter()
            handle(batch)
            handling += time.perf_counter() - t
            seen += len(batch)
    seconds = time.perf_counter() - started
    consumer.close()
    if seen < total:
        raise RuntimeError(f"consumed only {seen} of {total}")
    return seconds, handling


def bench_ingest(kafka: KafkaSettings, total: int, repeats: int, batch_size: int) -> None:
    partitions = 4
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    create_topic(kafka, topic, partitions=partitions)
    users, items = events(total)
    values = [
        f"user{u}:item{i}".encode() for u, i in zip(users.tolist(), items.tolist(), strict=True)
    ]
    producer = kafka.producer(**{"linger.ms": 20, "batch.num.messages": 10000})
    started = time.perf_counter()
    for value in values:
        while True:
            try:
                producer.produce(topic, value=value, key=value[: value.index(b":")])
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)
    produce_s = time.perf_counter() - started

    def raw(batch) -> None:
        pass

    def ours_factory():
        builder = ModelBuilder(
            BuilderConfig(
                topic=topic,
                retrain_every=total,
                window_events=total,
                model_dir=Path(tempfile.mkdtemp()),
            ),
            kafka,
        )
        return builder, lambda batch: builder.ingest(batch)

    def naive_factory():
        window: deque = deque(maxlen=total)
        users: dict[str, int] = {}
        items: dict[str, int] = {}

        def handle(batch) -> None:
            for m in batch:  # the seed's way: one message at a time
                if m.error() is not None:
                    continue
                try:
                    user, item = m.value().decode("utf-8").split(":")
                except (ValueError, UnicodeDecodeError):
                    continue
                u = users.setdefault(user, len(users))
                i = items.setdefault(item, len(items))
                window.append((u, i, 1.0))

        return handle

    loops = {"raw consume()": None, "recommender ingest": "ours", "naive loop": "naive"}
    rates: dict[str, list[float]] = {name: [] for name in loops}
    cpu: dict[str, list[float]] = {name: [] for name in loops}
    builder = None
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits all three alike
        for name, kind in loops.items():
            if kind == "ours":
                builder, handle = ours_factory()
            elif kind == "naive":
                handle = naive_factory()
            else:
                handle = raw
            wall, inside = consume_all(kafka, topic, partitions, total, handle, batch_size)
            rates[name].append(total / wall)
            cpu[name].append(total / inside if inside > 0 else float("inf"))
    assert builder is not None and len(builder.window) == total
    med = {k: statistics.median(v) for k, v in rates.items()}
    report(
        f"### Ingest: {total:,} keyed events (`user<N>:item<N>`), {partitions} partitions, "
        f"`consume({batch_size})`"
    )
    report()
    report(f"produce: {total / produce_s:,.0f} events/s")
    report()
    report(
        "| loop | median events/s (wall) | runs | vs raw consume() | processing only, events/s |"
    )
    report("| --- | ---: | --- | ---: | ---: |")
    for name, values_ in rates.items():
        runs = ", ".join(f"{v / 1000:.0f}k" for v in values_)
        processing = statistics.median(cpu[name])
        shown = "-" if name == "raw consume()" else f"{processing:,.0f}"
        report(
            f"| {name} | {med[name]:,.0f} | {runs} | {med[name] / med['raw consume()']:.0%} "
            f"| {shown} |"
        )
    report()
    window = builder.window
    report(
        f"window memory: {window.nbytes / len(window):.1f} bytes/event for the event arrays "
        f"({window.nbytes / 2**20:.1f} MiB for {len(window):,} events; id vocabularies: "
        f"{len(window.users):,} users, {len(window.items):,} items, held once each)"
    )
    report()


# -- training and snapshots -----------------------------------------------------------------------


def window_of(total: int) -> InteractionWindow:
    from recommender.events import parse_values

    window = InteractionWindow(total)
    users, items = events(total, seed=1)
    step = 100_000
    for lo in range(0, total, step):
        values = TASTE.values(users[lo : lo + step], items[lo : lo + step])
        batch = parse_values(values)
        n = len(batch)
        window.append(
            batch,
            timestamps_ms=np.arange(lo, lo + n, dtype=np.int64),
            partitions=np.zeros(n, np.int64),
            offsets=np.arange(lo, lo + n, dtype=np.int64),
        )
    return window


def bench_train(sizes: list[int], repeats: int) -> None:
    params = AlsParams(factors=64, iterations=15)
    report(f"### Retrain: ALS, {params.factors} factors, {params.iterations} iterations")
    report()
    report("| window events | users x items | window -> CSR s | fit s (median) | runs |")
    report("| ---: | --- | ---: | ---: | --- |")
    for size in sizes:
        window = window_of(size)
        csr_s, _ = median_of(window.matrix, repeats)
        matrix = window.matrix()
        fit_s, runs = median_of(lambda m=matrix: train_als(m, params), repeats)
        shape = f"{len(matrix.user_ids):,} x {len(matrix.item_ids):,}"
        report(
            f"| {size:,} | {shape} | {csr_s:.3f} | {fit_s:.2f} | "
            + ", ".join(f"{r:.2f}" for r in runs)
            + " |"
        )
    report()


def trained_snapshot(total: int, model_dir: Path) -> Path:
    window = window_of(total)
    matrix = window.matrix()
    factors = train_als(matrix, AlsParams(factors=64, iterations=15))
    return publish_snapshot(model_dir, 1, snapshot_arrays(matrix, factors), {"topic": "bench"})


def bench_snapshot(total: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        window = window_of(total)
        matrix = window.matrix()
        factors = train_als(matrix, AlsParams(factors=64, iterations=15))
        arrays = snapshot_arrays(matrix, factors)
        version = iter(range(1, 1000))
        publish_s, _ = median_of(
            lambda: publish_snapshot(Path(tmp), next(version), arrays, {"topic": "bench"}), repeats
        )
        path = Path(tmp) / "v000000000001"
        size = sum(f.stat().st_size for f in path.iterdir())
        load_s, _ = median_of(lambda: RecommenderModel(load_snapshot(path)), repeats)
    report(f"### Snapshot of a {total:,}-event window ({size / 2**20:.1f} MiB on disk)")
    report()
    report(f"publish (write + fsync + SHA-256 + rename): {publish_s:.3f} s median of {repeats}")
    report(f"load (verify checksums, mmap, index ids): {load_s:.3f} s median of {repeats}")
    report()


# -- HTTP -----------------------------------------------------------------------------------------

TRIVIAL = """
from aiohttp import web
async def handler(request):
    return web.json_response({"user": request.query.get("user"), "items": []})
app = web.Application()
app.router.add_get("/recommend", handler)
web.run_app(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), print=None, access_log=None)
"""


async def load(url_for, seconds: float, concurrency: int) -> tuple[int, list[float], int]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:

        async def worker(w: int) -> None:
            nonlocal errors
            k = w
            while time.monotonic() < stop:
                started = time.perf_counter()
                async with session.get(url_for(k)) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)
                k += concurrency

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return len(latencies), latencies, errors


def wait_http(url: str) -> None:
    import urllib.request

    for _ in range(300):
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} never answered 200")


def bench_http(seconds: float, concurrency: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trained_snapshot(1_000_000, Path(tmp))
        port_ours, port_trivial = free_port(), free_port()
        ours = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recommender",
                "serve",
                "--model-dir",
                tmp,
                "--port",
                str(port_ours),
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
        )
        trivial = subprocess.Popen([sys.executable, "-c", TRIVIAL, str(port_trivial)])
        try:
            wait_http(f"http://127.0.0.1:{port_ours}/ready")
            wait_http(f"http://127.0.0.1:{port_trivial}/recommend?user=x")
            model = RecommenderModel(load_snapshot(Path(tmp) / "v000000000001"))
            users = model.user_ids
            results: dict[str, list[tuple[int, list[float], int]]] = {"trivial": [], "ours": []}
            for _ in range(repeats):
                for name, port in (("trivial", port_trivial), ("ours", port_ours)):

                    def url(k: int, port=port) -> str:
                        user = users[k * 7919 % len(users)]
                        return f"http://127.0.0.1:{port}/recommend?user={user}&n=10"

                    results[name].append(asyncio.run(load(url, seconds, concurrency)))
        finally:
            for proc in (ours, trivial):
                proc.terminate()
                proc.wait()
    report(
        f"### HTTP: `/recommend?n=10`, {model.n_items:,}-item catalogue, {model.n_users:,} users; "
        f"{concurrency} concurrent clients (aiohttp, same machine) for {seconds:.0f} s, "
        f"{repeats} rounds"
    )
    report()
    report("| server | median req/s | p50 ms | p99 ms | errors |")
    report("| --- | ---: | ---: | ---: | ---: |")
    rps = {}
    for name, runs in results.items():
        rps[name] = statistics.median(count / seconds for count, _, _ in runs)
        lat = np.concatenate([np.asarray(latencies) for _, latencies, _ in runs]) * 1000
        errors = sum(e for _, _, e in runs)
        label = "trivial aiohttp handler" if name == "trivial" else "recommender (personalised)"
        report(
            f"| {label} | {rps[name]:,.0f} | {np.percentile(lat, 50):.2f} | "
            f"{np.percentile(lat, 99):.2f} | {errors} |"
        )
    report()
    report(f"recommender / trivial throughput: {rps['ours'] / rps['trivial']:.0%}")
    report()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["ingest", "train", "snapshot", "http"], action="append")
    parser.add_argument("--events", type=int, default=1_000_000, help="ingest events")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100_000, help="consume() batch size")
    parser.add_argument("--seconds", type=float, default=5.0, help="HTTP load per round")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    sections = set(args.only or ["ingest", "train", "snapshot", "http"])
    report(f"Command: `{' '.join(['.venv/bin/python', 'bench/run.py', *sys.argv[1:]])}`")
    report()
    report(
        f"Machine: {platform.machine()}, {__import__('os').cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    report()
    if "ingest" in sections:
        import os

        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if external:
            bench_ingest(KafkaSettings(external), args.events, args.repeats, args.batch)
        else:
            with EmbeddedBroker() as broker:
                bench_ingest(
                    KafkaSettings(broker.bootstrap_servers), args.events, args.repeats, args.batch
                )
    if "train" in sections:
        bench_train([100_000, 1_000_000], args.repeats)
    if "snapshot" in sections:
        bench_snapshot(1_000_000, args.repeats)
    if "http" in sections:
        bench_http(args.seconds, args.concurrency, args.repeats)


if __name__ == "__main__":
    main()
