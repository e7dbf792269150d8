#!/usr/bin/env python3
"""A catalogue burst against one real-time server: does its Kafka follower keep up?

    .venv/bin/python bench/catalogue_burst.py                  # the issue's burst (~30 s here)
    .venv/bin/python bench/catalogue_burst.py --scale 0.1      # a tenth of it
    .venv/bin/python bench/catalogue_burst.py --ids new --record-categories 32   # new items,
                                                               # each in all 32 categories

One ``recommender serve`` follows an interactions topic, an items topic (one partition) and an
experiments topic, with a challenger store so that ``POST /experiments`` can start one; both
stores hold a synthetic ALS snapshot (``--items``, ``--users``). Measured:

1. before the burst: a brand-new user's 3 events -> ``/recommend?user=`` reporting
   ``fresh_events >= 3`` (polled every 20 ms), the ``/recommend`` latency seen by a light
   open-loop client (``--rate`` requests/s), and ``POST /experiments {"mode": "interleave"}`` ->
   ``GET /experiments`` showing it;
2. during the burst (``--records`` item records of ``--record-kib`` KiB, each in
   ``--record-categories`` of 32 shared categories, of the snapshot's items or of new ones
   (``--ids``); then ``--deletions`` tombstones of unknown ids; then a sentinel record): the same
   three, with new users one after another until the server has read the sentinel;
3. after a restart on the same topics: time until ``/ready`` is 200, the latency of the first 20
   answers after that, the time until the items topic has been read again, one new user.

Prints a Markdown table and the command line. Bounded: each wait gives up after
``--probe-limit`` s, the burst phase after ``--burst-limit`` s. The server's log (``--log-level
INFO``) and, with ``--py-spy PATH``, a ``py-spy record`` of the server during the burst
(collapsed stacks per thread) are kept in ``--log-dir``. Uses the embedded broker unless
KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import numpy as np
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import bench_kafka, report, start_server  # noqa: E402

from recommender.broker import free_port  # noqa: E402
from recommender.kafka import KafkaSettings, create_topic  # noqa: E402
from recommender.producer import produce_values  # noqa: E402
from recommender.snapshot import publish_snapshot  # noqa: E402
from recommender.synthetic import random_snapshot_arrays  # noqa: E402

CATEGORIES = 32
POLL = 0.02  # seconds between polls of a condition
SENTINEL, SENTINEL_TITLE = "burst-end", "end of the burst"


# -- HTTP --------------------------------------------------------------------------------------


def get_json(url: str, timeout: float = 30.0) -> tuple[int, dict]:
    """(status, body); status 0 when the server did not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def post_json(url: str, body: dict, timeout: float = 30.0) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def wait_for(check: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``check()`` held (polled every 20 ms), or None after ``timeout``."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if check():
            return time.perf_counter() - started
        time.sleep(POLL)
    return None


class LightClient:
    """Open-loop ``/recommend?user=`` for known users at ``rate`` requests/s (a slow answer
    does not delay the next request), from a background thread until :meth:`stop`."""

    def __init__(self, base: str, users: int, rate: float) -> None:
        self.base, self.users, self.rate = base, users, rate
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(64)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LightClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)

    def _one(self, user: int) -> None:
        started = time.perf_counter()
        status, _ = get_json(f"{self.base}/recommend?user=u{user}&n=10")
        if status == 200:
            self.latencies.append(time.perf_counter() - started)
        else:
            self.failures += 1

    def _run(self) -> None:
        rng = np.random.default_rng(11)
        next_at = time.perf_counter()
        while not self._stop.is_set():
            self._pool.submit(self._one, int(rng.integers(self.users)))
            next_at += 1.0 / self.rate
            self._stop.wait(max(0.0, next_at - time.perf_counter()))


# -- the server and its inputs -----------------------------------------------------------------


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Processes started inside inherit a stdout and stderr appending to ``path`` (so the
    server's log goes to a file, and this report stays readable)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def publish(model_dir: Path, topic: str, users: int, items: int, seed: int) -> None:
    """A synthetic ALS snapshot (version 1) whose manifest names ``topic``."""
    arrays = random_snapshot_arrays(n_users=users, n_items=items, factors=32, seed=seed)
    manifest = {
        "topic": topic,
        "params": {"alpha": 4.0, "regularization": 32.0},
        "partitions": {},
    }
    publish_snapshot(model_dir, 1, arrays, manifest)


def item_record(item: str, size: int, spread: tuple[int, int], rng: np.random.Generator) -> bytes:
    """One item record of about ``size`` bytes, in ``spread`` (lowest, highest) of the shared
    categories."""
    categories = rng.choice(CATEGORIES, int(rng.integers(spread[0], spread[1] + 1)), replace=False)
    record = {
        "id": item,
        "title": f"Burst item {item}",
        "categories": [f"cat-{c}" for c in sorted(categories.tolist())],
        "hidden": False,
        "description": "",
    }
    pad = size - len(json.dumps(record))
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    record["description"] = (words * (pad // len(words) + 1))[: max(0, pad)]
    return json.dumps(record).encode()


def produce_burst(
    kafka: KafkaSettings,
    topic: str,
    ids: list[str],
    deletions: int,
    kib: int,
    spread: tuple[int, int],
) -> None:
    """Item records of ``ids``, then ``deletions`` tombstones of ids nobody knows, then the
    sentinel record (read last: the items topic has one partition)."""
    rng = np.random.default_rng(12)
    producer = kafka.producer(**{"linger.ms": 20, "batch.num.messages": 10000})
    values = [item_record(item, kib * 1024, spread, rng) for item in ids]
    produce_values(producer, topic, values, keys=[i.encode() for i in ids], progress=False)
    del values
    gone = [f"gone-{k}".encode() for k in range(deletions)]
    tombstones = cast("list[bytes]", [None] * deletions)  # produce() sends None as a null value
    produce_values(producer, topic, tombstones, keys=gone, progress=False, chunk=10_000)
    sentinel = json.dumps({"id": SENTINEL, "title": SENTINEL_TITLE, "categories": ["cat-0"]})
    producer.produce(topic, value=sentinel.encode(), key=SENTINEL.encode())
    if producer.flush(120):
        raise RuntimeError("the burst was not delivered within 120 s")


def fresh_delay(producer: Producer, topic: str, base: str, timeout: float) -> float:
    """A brand-new user's 3 events -> ``fresh_events >= 3`` in its answer, in seconds (inf when
    not within ``timeout``); timed from the first produce() call."""
    user = f"new-{uuid.uuid4().hex[:10]}"
    started = time.perf_counter()
    for item in (1, 2, 3):
        producer.produce(topic, value=f"{user}:i{item}".encode(), key=user.encode())
    producer.flush(30)
    url = f"{base}/recommend?user={user}&n=10"
    while time.perf_counter() - started < timeout:
        status, body = get_json(url, timeout=timeout)
        if status == 200 and body.get("fresh_events", 0) >= 3:
            return time.perf_counter() - started
        time.sleep(POLL)
    return float("inf")


def experiment_delay(base: str, mode: str, timeout: float) -> float:
    """``POST /experiments {"mode": mode}`` -> ``GET /experiments`` showing it, in seconds (inf
    when not within ``timeout``)."""
    started = time.perf_counter()
    status = post_json(f"{base}/experiments", {"mode": mode}, timeout=timeout)
    if status not in (200, 202):
        raise RuntimeError(f"POST /experiments answered {status}")
    left = timeout - (time.perf_counter() - started)
    shown = wait_for(lambda: get_json(f"{base}/experiments")[1].get("mode") == mode, left)
    return float("inf") if shown is None else time.perf_counter() - started


def sentinel_read(base: str) -> bool:
    """Whether the server's catalogue holds the sentinel (the items topic's last record)."""
    found = get_json(f"{base}/items?q={SENTINEL_TITLE.replace(' ', '+')}&n=1", timeout=5)[1]
    return [i.get("id") for i in found.get("items", [])] == [SENTINEL]


class StackSampler:
    """``py-spy record`` of the server while the burst is read: collapsed stacks per thread,
    idle ones included (so a thread waiting on a lock shows), in ``folder/burst-stacks.txt``
    (a diagnosis aid: ``--py-spy PATH``)."""

    def __init__(self, py_spy: str | None, pid: int, folder: Path) -> None:
        self.py_spy, self.pid, self.output = py_spy, pid, folder / "burst-stacks.txt"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StackSampler:
        if self.py_spy:
            command = [
                self.py_spy, "record", "--pid", str(self.pid), "--rate", "50", "--idle",
                "--threads", "--nonblocking", "--format", "raw", "--output", str(self.output),
            ]  # fmt: skip
            self._proc = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# -- the benchmark -----------------------------------------------------------------------------

INF = float("inf")


def ms(seconds: float) -> str:
    return "not within the limit" if seconds == INF else f"{seconds * 1000:,.0f} ms"


def percentiles(latencies: list[float], failures: int = 0) -> str:
    if not latencies:
        return f"no answer ({failures} failed)"
    values = np.asarray(latencies) * 1000
    text = (
        f"p50 {np.percentile(values, 50):,.0f} ms, p99 {np.percentile(values, 99):,.0f} ms, "
        f"max {values.max():,.0f} ms ({values.size} answers"
    )
    return text + (f", {failures} failed)" if failures else ")")


def probe_list(probes: list[tuple[float, float]], shown: int = 8) -> str:
    """Each probe's delay with the time it started after the burst's start (the slowest ones
    when there are many)."""
    worst = sorted(sorted(probes, key=lambda p: -p[1])[:shown])
    text = ", ".join(f"{ms(delay)} (at +{at:.0f} s)" for at, delay in worst)
    if len(probes) <= shown:
        return text
    values = [delay for _, delay in probes]
    return (
        f"{len(probes)} probes, median {ms(float(np.median(values)))}; the {shown} slowest: {text}"
    )


class Bench:
    """The topics, the stores and the server process of one run; each phase adds table rows."""

    def __init__(self, kafka: KafkaSettings, args: argparse.Namespace, folder: Path) -> None:
        self.kafka, self.args, self.folder = kafka, args, folder
        self.records = max(1, round(args.records * args.scale))
        self.deletions = round(args.deletions * args.scale)
        self.rows: list[tuple[str, str]] = []
        suffix = uuid.uuid4().hex[:8]
        self.interactions, self.items, self.experiments = (
            f"burst-{name}-{suffix}" for name in ("interactions", "items", "experiments")
        )
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen[bytes] | None = None
        self.producer = kafka.producer(**{"linger.ms": 0})

    def row(self, name: str, value: str) -> None:
        self.rows.append((name, value))

    def fresh(self, timeout: float) -> float:
        return fresh_delay(self.producer, self.interactions, self.base, timeout)

    def read_all(self) -> bool:
        """Whether the server has read the whole items topic (the sentinel is in)."""
        return sentinel_read(self.base)

    # -- the server ----------------------------------------------------------------------------

    def start(self, store: Path) -> None:
        for name, partitions in ((self.interactions, 4), (self.items, 1), (self.experiments, 1)):
            create_topic(self.kafka, name, partitions=partitions)
        self.champion, challenger = store / "champion", store / "challenger"
        publish(self.champion, self.interactions, self.args.users, self.args.items, seed=1)
        publish(challenger, self.interactions, self.args.users, self.args.items, seed=2)
        self.server_args = (
            "--bootstrap-servers", self.kafka.bootstrap_servers, "--topic", self.interactions,
            "--items-topic", self.items, "--experiments-topic", self.experiments,
            "--challenger-model-dir", str(challenger), "--exposures-topic", "off",
            "--log-level", "INFO",
        )  # fmt: skip
        if self.serve() is None:
            raise RuntimeError(f"the server never became ready; see {self.folder}")

    def serve(self) -> float | None:
        """Start the server; seconds until /ready answered 200 (None: not in 120 s)."""
        with output_to(self.folder / "server.log"):
            self.server = start_server(str(self.champion), self.port, *self.server_args)
        return wait_for(lambda: get_json(f"{self.base}/ready", timeout=1)[0] == 200, 120)

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.terminate()
        try:
            self.server.wait(30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.server = None

    # -- the phases ----------------------------------------------------------------------------

    def before(self) -> None:
        time.sleep(2)  # the follower assigns its topics
        fresh = [self.fresh(30) for _ in range(5)]
        self.row("before: new user's 3 events -> fresh_events >= 3", ", ".join(map(ms, fresh)))
        with LightClient(self.base, self.args.users, self.args.rate) as client:
            time.sleep(5)
        self.row("before: /recommend latency", percentiles(client.latencies, client.failures))
        shown = experiment_delay(self.base, "interleave", 30)
        self.row("before: POST /experiments interleave -> GET shows it", ms(shown))
        if experiment_delay(self.base, "off", 30) == INF:
            raise RuntimeError("the experiment was never stopped")

    def burst(self) -> None:
        args = self.args
        started = time.perf_counter()

        def elapsed() -> float:
            return time.perf_counter() - started

        produced: list[float] = []
        failed: list[str] = []
        consumed: list[float] = []
        experiment: list[float] = []

        def produce() -> None:
            # The snapshot's items are i0, i1, ...: "new" ids are unknown to it (content cold
            # start gives them vectors from their categories).
            prefix = "new-" if args.ids == "new" else "i"
            ids = [f"{prefix}{k}" for k in range(self.records)]
            spread = args.record_categories
            try:
                produce_burst(self.kafka, self.items, ids, self.deletions, args.record_kib, spread)
            except Exception as exc:
                failed.append(repr(exc))
                raise
            produced.append(elapsed())

        def watch() -> None:
            while elapsed() < args.burst_limit and not consumed and not failed:
                if self.read_all():
                    consumed.append(elapsed())
                time.sleep(0.25)

        def start_experiment() -> None:
            time.sleep(2)  # well inside the burst
            experiment.append(experiment_delay(self.base, "interleave", args.probe_limit))

        threads = [threading.Thread(target=f, daemon=True) for f in (produce, watch)]
        threads.append(threading.Thread(target=start_experiment, daemon=True))
        probes: list[tuple[float, float]] = []
        assert self.server is not None
        with (
            StackSampler(args.py_spy, self.server.pid, self.folder),
            LightClient(self.base, args.users, args.rate) as client,
        ):
            for thread in threads:
                thread.start()
            time.sleep(1)
            # New users one after another while the burst is being read (at least one).
            while not probes or not (consumed or failed or elapsed() > args.burst_limit):
                at = elapsed()
                limit = max(5.0, min(args.probe_limit, args.burst_limit - at))
                probes.append((at, self.fresh(limit)))
            for thread in threads:
                thread.join()
        self.row(
            "burst",
            f"{self.records:,} item records of {args.record_kib} KiB ({args.ids} ids, in "
            f"{'-'.join(map(str, args.record_categories))} of {CATEGORIES} categories), then "
            f"{self.deletions:,} tombstones, then a sentinel record",
        )
        self.row("burst: all produced after", ms(produced[0]) if produced else f"failed: {failed}")
        self.row("burst: sentinel read by the server after", ms(consumed[0] if consumed else INF))
        self.row("during: new users' 3 events -> fresh_events >= 3", probe_list(probes))
        self.row("during: /recommend latency", percentiles(client.latencies, client.failures))
        shown = ms(experiment[0]) if experiment else "no answer"
        self.row("during: POST /experiments interleave -> GET shows it", shown)

    def restart(self) -> None:
        self.stop()
        started = time.perf_counter()
        ready = self.serve()
        self.row("restart: start -> /ready 200", ms(INF if ready is None else ready))
        first = []
        for k in range(20):
            asked = time.perf_counter()
            status, _ = get_json(f"{self.base}/recommend?user=u{k}&n=10", timeout=60)
            first.append(time.perf_counter() - asked if status == 200 else INF)
        shown = ", ".join(ms(v) for v in first[:3])
        self.row(
            "restart: first 20 /recommend after /ready",
            f"{shown}, ...; {percentiles([v for v in first if v != INF], first.count(INF))}",
        )
        read = wait_for(self.read_all, self.args.probe_limit)
        read_after = INF if read is None else time.perf_counter() - started
        self.row("restart: start -> items topic read again", ms(read_after))
        after = self.fresh(self.args.probe_limit)
        self.row("after restart: new user's 3 events -> fresh_events >= 3", ms(after))


def spread(text: str) -> tuple[int, int]:
    """``2-3`` -> (2, 3); ``32`` -> (32, 32)."""
    lo, _, hi = text.partition("-")
    bounds = int(lo), int(hi or lo)
    if not 1 <= bounds[0] <= bounds[1] <= CATEGORIES:
        raise argparse.ArgumentTypeError(f"want LO-HI within 1-{CATEGORIES}")
    return bounds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=3000, help="item records in the burst")
    parser.add_argument("--deletions", type=int, default=200_000, help="tombstones after them")
    parser.add_argument("--record-kib", type=int, default=60, help="size of each item record")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply --records and --deletions (e.g. 0.1)"
    )
    parser.add_argument(
        "--ids",
        choices=["known", "new"],
        default="known",
        help="burst records of the snapshot's items (known) or of items it lacks (new)",
    )
    parser.add_argument(
        "--record-categories",
        type=spread,
        default=(2, 3),
        metavar="LO-HI",
        help=f"each record in LO to HI of the {CATEGORIES} shared categories (default 2-3)",
    )
    parser.add_argument("--items", type=int, default=20_000, help="items of the snapshots")
    parser.add_argument("--users", type=int, default=20_000, help="users of the snapshots")
    parser.add_argument("--rate", type=float, default=20.0, help="light client requests/s")
    parser.add_argument(
        "--probe-limit", type=float, default=90.0, help="seconds one measurement may wait"
    )
    parser.add_argument(
        "--burst-limit", type=float, default=240.0, help="seconds the burst phase may last"
    )
    parser.add_argument("--log-dir", type=Path, help="server log, stack dumps (default: a tmp dir)")
    parser.add_argument("--py-spy", help="py-spy binary: dump the server's stacks every 5 s")
    args = parser.parse_args()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="catalogue-burst-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    command = " ".join([".venv/bin/python", "bench/catalogue_burst.py", *sys.argv[1:]])
    with bench_kafka() as kafka, tempfile.TemporaryDirectory() as store:
        bench = Bench(kafka, args, log_dir)
        try:
            bench.start(Path(store))
            bench.before()
            bench.burst()
            bench.restart()
        finally:
            bench.stop()
        rows = bench.rows
    report(f"### Catalogue burst against one server ({platform.machine()}, {os.cpu_count()} cores)")
    report()
    report(f"Command: `{command}`")
    report()
    report("| measurement | result |")
    report("| --- | --- |")
    for name, value in rows:
        report(f"| {name} | {value} |")
    report()
    report(f"Server log and stack dumps: {log_dir}")


if __name__ == "__main__":
    main()
