"""How cost grows with the catalogue, the users and the window; and the server's follower.

    .venv/bin/python bench/scale.py --part scale      # window, retrain, snapshot, graph, HTTP
    .venv/bin/python bench/scale.py --part follower   # follower rate vs raw consume, memory

Scale: synthetic windows with taste structure (200 groups, 80 % in-group, mild popularity skew
mixed with uniform picks so that nearly every catalogue item occurs), 64 factors, default
settings. For each: window memory, retrain seconds (both cores), snapshot size and load time,
HNSW build time and recall@10 against exact scoring, and /recommend throughput and latency over
HTTP next to a trivial aiohttp handler (16 concurrent clients from one process on the same two
cores). Everything runs on this machine; the projection to larger sizes is arithmetic on these.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import TRIVIAL, load, produce_values, start_server, wait_http  # noqa: E402

from recommender.blas import limit_blas_threads  # noqa: E402
from recommender.broker import EmbeddedBroker, free_port  # noqa: E402
from recommender.events import parse_values  # noqa: E402
from recommender.kafka import KafkaSettings, create_topic  # noqa: E402
from recommender.models.als_training import AlsParams, train_als  # noqa: E402
from recommender.serving.index import AnnSettings, ExactTopK, GraphTopK  # noqa: E402
from recommender.serving.model import RecommenderModel  # noqa: E402
from recommender.snapshot import (  # noqa: E402
    load_published,
    publish_snapshot,
    snapshot_arrays,
)
from recommender.store import LocalStore  # noqa: E402
from recommender.synthetic import TasteModel  # noqa: E402
from recommender.window import InteractionWindow  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def events_for(total: int, users: int, items: int, seed: int = 0):
    taste = TasteModel(users=users, items=items, groups=200, in_group=0.8, skew=0.6)
    rng = np.random.default_rng(seed)
    u, i = taste.sample(total, rng)
    uniform = rng.random(total) < 0.3
    i[uniform] = rng.integers(0, items, int(uniform.sum()))
    return u, i


def fill_window(total: int, users: int, items: int) -> tuple[InteractionWindow, float]:
    u, i = events_for(total, users, items)
    window = InteractionWindow(total)
    started = time.perf_counter()
    step = 200_000
    for lo in range(0, total, step):
        values = [
            b"u%d:i%d" % (a, b)
            for a, b in zip(u[lo : lo + step].tolist(), i[lo : lo + step].tolist(), strict=True)
        ]
        batch = parse_values(values)
        n = len(batch)
        offsets = np.arange(lo, lo + n, dtype=np.int64)
        window.append(
            batch, timestamps_ms=offsets, partitions=np.zeros(n, np.int64), offsets=offsets
        )
    return window, time.perf_counter() - started


def http_round(model_dir: str, users: list[str], seconds: float, rounds: int) -> dict[str, tuple]:
    ports = {"trivial": free_port(), "server": free_port()}
    procs = [
        subprocess.Popen([sys.executable, "-c", TRIVIAL, str(ports["trivial"])]),
        start_server(model_dir, ports["server"]),
    ]
    try:
        wait_http(f"http://127.0.0.1:{ports['trivial']}/recommend?user=x")
        deadline = time.monotonic() + 900  # the server builds its graph before it is ready
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{ports['server']}/ready", timeout=1
                ) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)

        def url(port: int):
            return lambda k: (
                f"http://127.0.0.1:{port}/recommend?user={users[k * 7919 % len(users)]}&n=10"
            )

        results: dict[str, list] = {"trivial": [], "server": []}
        for _ in range(rounds):
            for name in results:
                results[name].append(asyncio.run(load(url(ports[name]), seconds, 16)))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
    out = {}
    for name, runs in results.items():
        rps = statistics.median(count / seconds for count, _, _ in runs)
        lat = np.concatenate([np.asarray(lat) for _, lat, _ in runs]) * 1000
        out[name] = (
            rps,
            float(np.percentile(lat, 50)),
            float(np.percentile(lat, 99)),
            sum(e for *_, e in runs),
        )
    return out


def part_scale(configs: list[tuple[int, int, int]], seconds: float, rounds: int) -> None:
    print("| events | users | items | window B/event | fill s | retrain s | snapshot MiB | "
          "load s | graph build s | recall@10 | /recommend req/s (vs trivial) | p50 ms | "
          "p99 ms |")  # fmt: skip
    print("|" + " ---: |" * 13)
    for total, users, items in configs:
        gc.collect()
        window, fill_s = fill_window(total, users, items)
        per_event = window.nbytes / total
        matrix = window.matrix()
        del window
        gc.collect()
        started = time.perf_counter()
        factors = train_als(matrix.user_items, AlsParams())
        train_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            store = LocalStore(Path(tmp))
            publish_snapshot(store, 1, snapshot_arrays(matrix, factors), {"topic": "bench"})
            size = sum(f.stat().st_size for f in store.path_of(1).iterdir()) / 2**20
            started = time.perf_counter()
            model = RecommenderModel(load_published(store, 1))
            load_s = time.perf_counter() - started
            user_ids = list(model.user_ids)
            sample = factors.user_factors[np.random.default_rng(3).integers(0, len(user_ids), 1000)]
            del model, matrix
            gc.collect()
            build_s, recall = float("nan"), float("nan")
            if len(factors.item_factors) >= AnnSettings().threshold:
                started = time.perf_counter()
                graph = GraphTopK(factors.item_factors, AnnSettings())
                build_s = time.perf_counter() - started
                exact = ExactTopK(factors.item_factors)
                none = np.zeros(0, np.int64)
                recall = float(np.mean([
                    len(set(graph.top(x, 10, none)[0]) & set(exact.top(x, 10, none)[0])) / 10
                    for x in sample
                ]))  # fmt: skip
                del graph, exact
            del factors
            gc.collect()
            http = http_round(tmp, user_ids, seconds, rounds)
        rps, p50, p99, errors = http["server"]
        trivial = http["trivial"][0]
        print(f"| {total:,} | {users:,} | {items:,} | {per_event:.1f} | {fill_s:.1f} | "
              f"{train_s:.1f} | "
              f"{size:,.0f} | {load_s:.2f} | {build_s:.1f} | {recall:.3f} | {rps:,.0f} "
              f"({rps / trivial:.0%} of {trivial:,.0f}) | {p50:.2f} | {p99:.2f} |"
              + (f" {errors} errors" if errors else ""), flush=True)  # fmt: skip


def part_follower(total: int) -> None:
    """The server's follower reading a backlog: rate next to a raw consume() loop; event loop
    latency meanwhile; memory per fresh event and per fresh user."""
    users = total // 10
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        kafka = KafkaSettings(broker.bootstrap_servers)
        topic = f"follow-{uuid.uuid4().hex[:6]}"
        create_topic(kafka, topic, partitions=4)
        u, i = events_for(total, users, 20_000, seed=5)
        values = [b"u%d:i%d" % (a, b) for a, b in zip(u.tolist(), i.tolist(), strict=True)]
        produce_values(kafka, topic, values)
        # Raw consume loop, as the follower consumes: batches of 5,000.
        consumer = kafka.consumer(**{"fetch.wait.max.ms": 10, "auto.offset.reset": "earliest"})
        from confluent_kafka import TopicPartition

        consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
        started, seen = time.perf_counter(), 0
        while seen < total:
            batch = consumer.consume(5000, timeout=0.02)
            seen += len([m.value() for m in batch])
        raw_rate = total / (time.perf_counter() - started)
        consumer.close()
        # A snapshot that covers none of the topic: every event becomes fresh.
        model_dir = Path(tmp) / "model"
        few = InteractionWindow(10)
        batch = parse_values([b"u0:i0", b"u1:i1"])
        offs = np.zeros(2, np.int64)
        few.append(batch, timestamps_ms=offs, partitions=offs, offsets=offs)
        m = few.matrix()
        fitted = train_als(m.user_items, AlsParams(factors=8, iterations=2))
        nothing = {str(p): {"window_start": 0, "next_offset": 0} for p in range(4)}
        manifest = {"topic": topic, "partitions": nothing}
        publish_snapshot(LocalStore(model_dir), 1, snapshot_arrays(m, fitted), manifest)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(str(model_dir), port, "--bootstrap-servers", kafka.bootstrap_servers,
                            "--topic", topic, "--fresh-memory", "1GB")  # fmt: skip
        try:
            wait_http(f"{base}/health")
            idle = ping(base, 2.0)
            rss_before = server_rss(proc.pid)
            stop = threading.Event()
            during: list[float] = []
            pinger = threading.Thread(target=lambda: during.extend(ping(base, 60.0, stop)))
            pinger.start()
            wait_http(f"{base}/ready")
            started = time.perf_counter()
            while True:
                with urllib.request.urlopen(f"{base}/model", timeout=5) as r:
                    fresh = json.loads(r.read())["fresh"]
                if fresh["events"] >= total * 0.999:
                    break
                time.sleep(0.05)
            follow_s = time.perf_counter() - started
            stop.set()
            pinger.join()
            rss_after = server_rss(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
    rate = total / follow_s
    print("| events | raw consume() ev/s | follower ev/s | ratio | /health p50/p99 ms idle | "
          "during following | RSS per fresh event | per fresh user |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {total:,} | {raw_rate:,.0f} | {rate:,.0f} | {rate / raw_rate:.0%} | "
          f"{idle[0]:.2f} / {idle[1]:.2f} | {pct(during)[0]:.2f} / {pct(during)[1]:.2f} | "
          f"{(rss_after - rss_before) * 2**20 / total:.0f} B (events + users) | "
          f"{fresh['users']:,} users |")  # fmt: skip


def pct(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def ping(base: str, seconds: float, stop: threading.Event | None = None) -> list[float] | tuple:
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        started = time.perf_counter()
        with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
            r.read()
        out.append(time.perf_counter() - started)
        time.sleep(0.01)
    return out if stop is not None else pct(out)


def server_rss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["scale", "follower"], required=True)
    parser.add_argument("--configs", default="1000000:50000:20000,1000000:50000:200000,"
                        "10000000:1000000:1000000")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=2_000_000, help="follower backlog")
    args = parser.parse_args()
    limit_blas_threads()
    print(f"Command: `.venv/bin/python bench/scale.py {' '.join(sys.argv[1:])}` "
          f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, peak RSS so far "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)\n")  # fmt: skip
    if args.part == "scale":
        configs = [tuple(int(x) for x in c.split(":")) for c in args.configs.split(",")]
        part_scale(configs, args.seconds, args.rounds)  # type: ignore[arg-type]
    else:
        part_follower(args.events)


if __name__ == "__main__":
    main()
