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
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.broker import EmbeddedBroker, free_port  # noqa: E402
from recommender.builder import BuilderConfig, ModelBuilder  # noqa: E402
from recommender.kafka import KafkaSettings, create_topic  # noqa: E402
from recommender.models.als_training import AlsParams, train_als  # noqa: E402
from recommender.producer import produce_values as send  # noqa: E402
from recommender.serving.model import RecommenderModel  # noqa: E402
from recommender.snapshot import (  # noqa: E402
    load_snapshot,
    publish_snapshot,
    snapshot_arrays,
)
from recommender.store import LocalStore  # noqa: E402
from recommender.synthetic import TasteModel  # noqa: E402
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
    started = time.perf_counter()
    produce_values(kafka, topic, values)
    produce_s = time.perf_counter() - started

    def raw(batch) -> None:
        pass

    def ours_factory():
        builder = ModelBuilder(
            BuilderConfig(
                topic=topic,
                retrain_every=total,
                window_events=total,
                store=LocalStore(Path(tempfile.mkdtemp())),
            ),
            kafka,
        )
        return builder, lambda batch: builder.consumption.ingest(batch)

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
        fit_s, runs = median_of(lambda m=matrix: train_als(m.user_items, params), repeats)
        shape = f"{len(matrix.user_ids):,} x {len(matrix.item_ids):,}"
        report(
            f"| {size:,} | {shape} | {csr_s:.3f} | {fit_s:.2f} | "
            + ", ".join(f"{r:.2f}" for r in runs)
            + " |"
        )
    report()


def bench_gate(total: int, repeats: int) -> None:
    """Retrain cost with the quality gate on: fit without the holdout, judge, solve users."""
    from recommender.models.als_training import solve_users
    from recommender.quality import GateModel, compare_models

    params = AlsParams()
    window = window_of(total)
    holdout = 5000
    matrix = window.matrix(holdout_from={0: total - holdout}, max_holdout=holdout)
    assert matrix.train_items is not None
    train = matrix.train_items
    serving = train_als(matrix.user_items, params)
    popularity = np.bincount(train.indices, minlength=train.shape[1])
    old = GateModel(
        list(matrix.item_ids), serving.item_factors, popularity, params.alpha, params.regularization
    )
    plain_s, _ = median_of(lambda: train_als(matrix.user_items, params), repeats)
    fitted = train_als(train, params)
    new = GateModel(
        list(matrix.item_ids), fitted.item_factors, popularity, params.alpha, params.regularization
    )

    def judge():
        return compare_models(
            new, old, list(matrix.item_ids), train, matrix.holdout_users, matrix.holdout_items,
            matrix.holdout_weights, max_drop=0.2,
        )  # fmt: skip

    judge_s, _ = median_of(judge, repeats)
    solve_s, _ = median_of(lambda: solve_users(fitted.item_factors, train, params), repeats)
    verdict = judge()
    report(f"### Quality gate on a {total:,}-event window ({holdout:,} newest events held out)")
    report()
    report("| step | median s |")
    report("| --- | ---: |")
    report(f"| plain retrain (no gate) | {plain_s:.2f} |")
    users = verdict.comparison.users if verdict.comparison else 0
    report(
        f"| judge: NDCG@10 of both models as served, paired bootstrap ({users:,} users) | "
        f"{judge_s:.2f} |"
    )
    report(f"| solve every user on the whole window (ALS half-step) | {solve_s:.2f} |")
    report()
    report(
        f"gate overhead per retrain: {(judge_s + solve_s) / plain_s:.0%} of a plain retrain; "
        f"verdict: {verdict.decision} ({verdict.reason})"
    )
    report()


def trained_snapshot(total: int, model_dir: Path, topic: str = "bench") -> Path:
    """Publish version 1 trained on a synthetic window; `topic` must be the one a server follows."""
    window = window_of(total)
    matrix = window.matrix()
    factors = train_als(matrix.user_items, AlsParams(factors=64, iterations=15))
    return Path(publish_snapshot(model_dir, 1, snapshot_arrays(matrix, factors), {"topic": topic}))


def bench_snapshot(total: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        window = window_of(total)
        matrix = window.matrix()
        factors = train_als(matrix.user_items, AlsParams(factors=64, iterations=15))
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


@contextlib.contextmanager
def bench_kafka() -> Iterator[KafkaSettings]:
    """The broker benchmarks run against: ``$KAFKA_BOOTSTRAP_SERVERS`` when set, else an
    embedded one for the duration."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield KafkaSettings(external)
        return
    with EmbeddedBroker() as broker:
        yield KafkaSettings(broker.bootstrap_servers)


def wait_http(url: str, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} never answered 200")


def start_server(model_dir: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recommender",
            "serve",
            "--model-dir",
            model_dir,
            "--port",
            str(port),
            "--log-level",
            "WARNING",
            *extra,
        ],
        cwd=ROOT,
    )


def produce_values(kafka: KafkaSettings, topic: str, values: list[bytes]) -> None:
    """As fast as possible, keyed by user (the package's producer loop, no progress bar)."""
    producer = kafka.producer(**{"linger.ms": 20, "batch.num.messages": 10000})
    keys = [value[: value.index(b":")] for value in values]
    send(producer, topic, values, keys=keys, progress=False, chunk=10_000)


def bench_http(kafka: KafkaSettings, seconds: float, concurrency: int, repeats: int) -> None:
    import json
    import urllib.request

    fold_users = 5000
    with tempfile.TemporaryDirectory() as tmp:
        # The servers refuse a snapshot built from another topic than the one they follow.
        topic = f"bench-http-{uuid.uuid4().hex[:8]}"
        create_topic(kafka, topic, partitions=4)
        trained_snapshot(1_000_000, Path(tmp), topic)
        model = RecommenderModel(load_snapshot(Path(tmp) / "v000000000001"))
        users = model.user_ids
        # Fresh events (3 each) for the first users: they are answered by fold-in.
        rng = np.random.default_rng(2)
        fresh = [
            f"{users[u]}:{model.item_ids[i]}".encode()
            for u in range(fold_users)
            for i in rng.integers(0, model.n_items, 3).tolist()
        ]
        produce_values(kafka, topic, fresh)
        follow = ["--bootstrap-servers", kafka.bootstrap_servers, "--topic", topic]
        ports = {name: free_port() for name in ("trivial", "one", "two")}
        procs = [
            subprocess.Popen([sys.executable, "-c", TRIVIAL, str(ports["trivial"])]),
            start_server(tmp, ports["one"], *follow),
            start_server(tmp, ports["two"], "--workers", "2", *follow),
        ]
        try:
            wait_http(f"http://127.0.0.1:{ports['trivial']}/recommend?user=x")
            for name in ("one", "two"):
                wait_http(f"http://127.0.0.1:{ports[name]}/ready")
            for _ in range(600):  # until the follower has read every fresh event
                with urllib.request.urlopen(f"http://127.0.0.1:{ports['one']}/model") as r:
                    if json.loads(r.read())["fresh"]["events"] >= len(fresh):
                        break
                time.sleep(0.1)
            time.sleep(2)  # the two-worker server follows the topic too

            def urls(port: int, fold_in: bool):
                def url(k: int) -> str:
                    if fold_in:
                        user = users[k * 7919 % fold_users]
                    else:
                        user = users[fold_users + k * 7919 % (len(users) - fold_users)]
                    return f"http://127.0.0.1:{port}/recommend?user={user}&n=10"

                return url

            cases = {
                "trivial aiohttp handler": (urls(ports["trivial"], False), procs[0]),
                "recommender, personalised users": (urls(ports["one"], False), procs[1]),
                "recommender, fold-in users (3 fresh events each)": (
                    urls(ports["one"], True),
                    procs[1],
                ),
                "recommender --workers 2, personalised users": (
                    urls(ports["two"], False),
                    procs[2],
                ),
            }
            results: dict[str, list[tuple[int, list[float], int]]] = {c: [] for c in cases}
            cpu_us: dict[str, list[float]] = {c: [] for c in cases}
            for _ in range(repeats):
                for name, (url, proc) in cases.items():
                    before = cpu_seconds(proc.pid)
                    results[name].append(asyncio.run(load(url, seconds, concurrency)))
                    used = cpu_seconds(proc.pid) - before
                    cpu_us[name].append(1e6 * used / max(1, results[name][-1][0]))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()
    report(
        f"### HTTP: `/recommend?n=10`, {model.n_items:,}-item catalogue, {model.n_users:,} users, "
        f"{model.factors} factors; {concurrency} concurrent clients (one aiohttp client process "
        f"on the same 2 cores) for {seconds:.0f} s, {repeats} rounds, interleaved"
    )
    report()
    report(
        "| server | median req/s | vs trivial | p50 ms | p99 ms | errors "
        "| server CPU µs a request (median) |"
    )
    report("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rps = {
        name: statistics.median(count / seconds for count, _, _ in runs)
        for name, runs in results.items()
    }
    trivial = rps["trivial aiohttp handler"]
    for name, runs in results.items():
        lat = np.concatenate([np.asarray(latencies) for _, latencies, _ in runs]) * 1000
        errors = sum(e for _, _, e in runs)
        report(
            f"| {name} | {rps[name]:,.0f} | {rps[name] / trivial:.0%} | "
            f"{np.percentile(lat, 50):.2f} | {np.percentile(lat, 99):.2f} | {errors} | "
            f"{statistics.median(cpu_us[name]):.0f} |"
        )
    report()
    report(
        "Server CPU a request is the server's processes' CPU time over the requests answered: "
        "steadier than req/s here, where the load generator shares the two cores."
    )
    report()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its live child processes (workers)."""
    total = 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return total
    return total + sum(cpu_seconds(c) for c in children)


def bench_foldin(repeats: int) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    with tempfile.TemporaryDirectory() as tmp:
        model = RecommenderModel(load_snapshot(trained_snapshot(1_000_000, Path(tmp))))
        rng = np.random.default_rng(4)
        users = [model.user_ids[k] for k in rng.integers(0, model.n_users, 1000).tolist()]
        fresh = {
            u: [(model.item_ids[i], 1.0) for i in rng.integers(0, model.n_items, 3).tolist()]
            for u in users
        }
        history = [len(model.seen_items(u)) + 3 for u in users]

        def ours() -> None:
            for user in users:
                model.query_for_user(user, 10, fresh=fresh[user])

        ours_s, _ = median_of(ours, repeats)
        als = AlternatingLeastSquares(
            factors=model.factors, regularization=model.regularization, alpha=model.alpha
        )
        als.item_factors = np.array(model.item_factors)  # writable copy: implicit needs one
        sample = users[:100]

        def theirs() -> None:
            for user in sample:
                row = model.user_index[user]
                als.recalculate_user(0, model.seen[row])

        theirs_s, _ = median_of(theirs, repeats)
    report(
        f"### Fold-in: one user's vector against {model.n_items:,} items, {model.factors} factors"
    )
    report()
    report(
        f"users measured: {len(users):,}, items per user (window + 3 fresh): median "
        f"{int(np.median(history))}, max {max(history)}"
    )
    report()
    report("| what | median per call |")
    report("| --- | ---: |")
    report(
        f"| recommender: `query_for_user` with fresh events (history, YᵀY+λI precomputed, "
        f"solve) | {ours_s / len(users) * 1e3:.3f} ms |"
    )
    report(
        f"| implicit `recalculate_user` (Cython; YᵀY cached after its first call) | "
        f"{theirs_s / len(sample) * 1e3:.3f} ms |"
    )
    report()


def bench_freshness(kafka: KafkaSettings, probes: int, background_rate: float) -> None:
    lat, versions = measure_freshness(kafka, probes, background_rate)
    report(f"### Freshness: event published -> reflected in `/recommend` ({probes} probes)")
    report()
    report(
        f"background load {background_rate:,.0f} events/s on the same topic; the builder "
        f"retrained and the server swapped {versions} times during the probes; polling every 5 ms"
    )
    report()
    report("| p50 | p95 | p99 | max |")
    report("| ---: | ---: | ---: | ---: |")
    report(
        f"| {np.percentile(lat, 50):.0f} ms | {np.percentile(lat, 95):.0f} ms | "
        f"{np.percentile(lat, 99):.0f} ms | {lat.max():.0f} ms |"
    )
    report()


def measure_freshness(
    kafka: KafkaSettings,
    probes: int,
    background_rate: float,
    builder_args: tuple[str, ...] = (),
    ready_timeout: float = 30.0,
    wait_for: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Publish one event for a new user; poll /recommend until its answer reflects it. A builder
    (``builder_args`` added to its command, e.g. ``--model knn``) retrains every 5 s under
    steady background load; ``wait_for`` (given the server's base URL) returns when the probes
    may start. Returns (milliseconds per probe, model versions swapped in)."""
    import json
    import threading
    import urllib.request

    topic = f"bench-fresh-{uuid.uuid4().hex[:8]}"
    create_topic(kafka, topic, partitions=4)
    produce_values(kafka, topic, TASTE.values(*events(200_000, seed=5)))
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        kafka_args = ["--bootstrap-servers", kafka.bootstrap_servers]
        builder = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recommender",
                "build",
                topic,
                "50000",
                "200000",
                "-b",
                "--retrain-interval",
                "5",
                "--model-dir",
                tmp,
                "--log-level",
                "WARNING",
                *kafka_args,
                *builder_args,
            ],
            cwd=ROOT,
        )
        server = start_server(tmp, port, "--topic", topic, *kafka_args)
        stop = threading.Event()
        try:
            wait_http(f"http://127.0.0.1:{port}/ready", ready_timeout)

            def background() -> None:  # steady load: retrains and swaps keep happening
                producer = kafka.producer()
                rng = np.random.default_rng(6)
                while not stop.is_set():
                    for value in TASTE.values(*TASTE.sample(int(background_rate / 10), rng)):
                        producer.produce(topic, value=value)
                    producer.poll(0)
                    time.sleep(0.1)
                producer.flush(5)

            thread = threading.Thread(target=background)
            thread.start()
            if wait_for is not None:
                wait_for(f"http://127.0.0.1:{port}")
            producer = kafka.producer(**{"linger.ms": 0})
            latencies = []
            swaps_before = None
            for k in range(probes):
                user = f"probe-{k}"
                producer.produce(topic, value=f"{user}:item{k % 100}".encode(), key=user.encode())
                producer.flush(5)
                sent = time.perf_counter()
                url = f"http://127.0.0.1:{port}/recommend?user={user}&n=10"
                while True:
                    with urllib.request.urlopen(url) as r:
                        body = json.loads(r.read())
                    if body["fresh_events"] >= 1 or body["source"] != "popular":
                        break
                    if time.perf_counter() - sent > 10:
                        raise RuntimeError(f"{user}'s event never showed up")
                    time.sleep(0.005)
                latencies.append(time.perf_counter() - sent)
                if swaps_before is None:
                    swaps_before = body["model_version"]
            versions = body["model_version"] - (swaps_before or 0)
        finally:
            stop.set()
            for proc in (server, builder):
                proc.terminate()
                proc.wait()
    return np.asarray(latencies) * 1000, versions


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        choices=["ingest", "train", "gate", "snapshot", "foldin", "http", "fresh"],
        action="append",
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="ingest events")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100_000, help="consume() batch size")
    parser.add_argument("--seconds", type=float, default=5.0, help="HTTP load per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--probes", type=int, default=200, help="freshness probes")
    parser.add_argument("--background-rate", type=float, default=2000, help="events/s")
    args = parser.parse_args()
    sections = set(args.only or ["ingest", "train", "gate", "snapshot", "foldin", "http", "fresh"])
    report(f"Command: `{' '.join(['.venv/bin/python', 'bench/run.py', *sys.argv[1:]])}`")
    report()
    report(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    report()
    with bench_kafka() as kafka:
        if "ingest" in sections:
            bench_ingest(kafka, args.events, args.repeats, args.batch)
        if "train" in sections:
            bench_train([100_000, 1_000_000], args.repeats)
        if "gate" in sections:
            bench_gate(1_000_000, args.repeats)
        if "snapshot" in sections:
            bench_snapshot(1_000_000, args.repeats)
        if "foldin" in sections:
            bench_foldin(args.repeats)
        if "http" in sections:
            bench_http(kafka, args.seconds, args.concurrency, args.repeats)
        if "fresh" in sections:
            bench_freshness(kafka, args.probes, args.background_rate)


if __name__ == "__main__":
    main()
