"""A fault campaign against real processes and a real broker; prints the figures in RELIABILITY.md.

    .venv/bin/python bench/faults.py [--kills 20] [--restarts 5] [--swap-seconds 20]

1. kill -9 of the builder at random moments (start-up, replay, training, writing a snapshot),
   then a last run: every published snapshot must load, and the window must equal the newest
   events of the topic by time.
2. poison records of every kind in a live stream, and hostile HTTP requests.
3. the in-memory broker restarted empty under a running builder and server.
4. requests answered while the builder publishes a snapshot about every second.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import TopicPartition  # noqa: E402

from recommender.broker import EmbeddedBroker, free_port  # noqa: E402
from recommender.events import format_event  # noqa: E402
from recommender.kafka import KafkaSettings, create_topic  # noqa: E402
from recommender.producer import produce_values  # noqa: E402
from recommender.snapshot import load_published  # noqa: E402
from recommender.store import LocalStore  # noqa: E402
from recommender.synthetic import TasteModel  # noqa: E402

TASTE = TasteModel(users=2000, items=500, groups=8)
WORK = Path(tempfile.mkdtemp(prefix="faults-"))


class Daemon:
    def __init__(self, name: str, args: list[str]) -> None:
        self.log = WORK / f"{name}.log"
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recommender", *args],
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)
        self._out.close()
        return self.proc.returncode


def produce(kafka: KafkaSettings, topic: str, values: list[bytes], **config: object) -> None:
    producer = kafka.producer(**config)
    keys = [v.partition(b":")[0] for v in values]
    produce_values(producer, topic, values, keys=keys, progress=False)
    assert producer.flush(60) == 0


def wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (urllib.error.URLError, OSError):
        return 0, {}


def builder_args(topic: str, model_dir: Path, kafka: KafkaSettings, *extra: str) -> list[str]:
    return [
        "build", topic, *extra, "--tune", "off", "--model-dir", str(model_dir),
        "--bootstrap-servers", kafka.bootstrap_servers, "--factors", "16", "--iterations", "8",
    ]  # fmt: skip


def latest_manifest(model_dir: Path) -> dict | None:
    store = LocalStore(model_dir)
    version = store.latest()
    return None if version is None else store.read_manifest(version)


def window_pairs(model_dir: Path) -> dict:
    store = LocalStore(model_dir)
    snapshot = load_published(store, store.latest() or 0)
    indptr, indices = snapshot.arrays["seen_indptr"], snapshot.arrays["seen_indices"]
    weights = snapshot.arrays["seen_weights"]
    return {
        (user, snapshot.item_ids[indices[k]]): float(weights[k])
        for row, user in enumerate(snapshot.user_ids)
        for k in range(indptr[row], indptr[row + 1])
    }


def newest_pairs(kafka: KafkaSettings, topic: str, partitions: int, count: int) -> dict:
    consumer = kafka.consumer()
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records, idle = [], 0
    while idle < 5:
        batch = [m for m in consumer.consume(10_000, timeout=0.5) if m.error() is None]
        idle = 0 if batch else idle + 1
        records += [(m.timestamp()[1], m.offset(), m.partition(), m.value()) for m in batch]
    consumer.close()
    pairs: dict = {}
    for *_, value in sorted(records)[-count:]:
        key = tuple(value.decode().split(":")[:2])
        pairs[key] = pairs.get(key, 0.0) + 1.0
    return pairs


def kills(kafka: KafkaSettings, rounds: int, report: list[str]) -> None:
    topic, model_dir = "kills", WORK / "kills-model"
    create_topic(kafka, topic, partitions=4)
    args = builder_args(topic, model_dir, kafka, "2000", "20000", "-b")
    rng = np.random.default_rng(1)
    mid_write = 0

    def writing() -> bool:
        return model_dir.exists() and any(
            p.name.startswith(".incoming-") for p in model_dir.iterdir()
        )

    for k in range(rounds):
        produce(kafka, topic, TASTE.values(*TASTE.sample(3000, rng)))
        daemon = Daemon("kills-builder", args)
        if k % 2:  # every other round: the moment a snapshot is being written
            deadline = time.monotonic() + 15
            while not writing() and time.monotonic() < deadline:
                time.sleep(0.001)
        else:
            time.sleep(float(rng.uniform(0.3, 4.0)))
        mid_write += writing()
        daemon.stop(signal.SIGKILL)
    daemon = Daemon("kills-builder", args)
    total = 3000 * rounds + 1000
    produce(kafka, topic, TASTE.values(*TASTE.sample(1000, rng)))
    wait(
        lambda: (
            (m := latest_manifest(model_dir))
            and sum(p["next_offset"] for p in m["partitions"].values()) == total
        ),
        180,
        "the last snapshot",
    )
    daemon.stop()
    store = LocalStore(model_dir)
    loads = sum(1 for v in store.versions() if load_published(store, v))
    identical = window_pairs(model_dir) == newest_pairs(kafka, topic, 4, 20_000)
    resumed = daemon.output().count("resuming from snapshot")
    report.append(
        f"| kill -9 of the builder at random moments | {rounds} kills ({mid_write} while a "
        f"snapshot was being written), {resumed} resumptions from a snapshot | window identical "
        f"to the newest 20,000 events of the topic: **{'yes' if identical else 'NO'}**; every "
        f"kept snapshot verifies ({loads}/{len(store.versions())}) |"
    )


POISON: dict[str, bytes | None] = {
    "1 MB weight": b"bomb:i1:" + b"1" * 1_000_000,
    "2 MB record": b"x" * 2_000_000,
    "weight 1e30": b"evil:i1:1e30",
    "weight nan": b"u:i1:nan",
    "not UTF-8": b"\xff\xfe:i1",
    "control character": b"u\n:i1",
    "600-byte id": b"u" * 600 + b":i1",
    "empty value": b"",
    "tombstone": None,
}


def poison(kafka: KafkaSettings, report: list[str], per_kind: int = 20) -> None:
    topic, model_dir, port = "poison", WORK / "poison-model", free_port()
    create_topic(kafka, topic, partitions=2)
    create_topic(kafka, "poison-dead", partitions=1)
    produce(kafka, topic, TASTE.values(*TASTE.sample(3000, np.random.default_rng(2))))
    builder = Daemon(
        "poison-builder",
        builder_args(topic, model_dir, kafka, "1000", "50000", "-b", "--dead-letter-topic",
                     "poison-dead"),
    )  # fmt: skip
    server = Daemon(
        "poison-server",
        ["serve", "--model-dir", str(model_dir), "--port", str(port), "--topic", topic,
         "--bootstrap-servers", kafka.bootstrap_servers, "--enable-ingest", "--api-token", "t"],
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait(lambda: get(f"{base}/ready")[0] == 200, 60, "a model")
    producer = kafka.producer(**{"message.max.bytes": 5_000_000})
    for _ in range(per_kind):
        for value in POISON.values():
            producer.produce(topic, value, key=b"poison")
    assert producer.flush(60) == 0
    produce(kafka, topic, TASTE.values(*TASTE.sample(2000, np.random.default_rng(3))))
    wanted = 3000 + 2000 + per_kind  # the initial events, the later ones, the 1e30 weights
    manifest = wait(
        lambda: (m := latest_manifest(model_dir)) and m["builder"]["accepted"] == wanted and m,
        120,
        "a retrain after the poison",
    )
    statuses = [get(f"{base}/recommend?user=evil")[0], get(f"{base}/because?user=evil&item=i1")[0]]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    answers = []
    for body, ctype, auth in (
        (b"[" * 100_000 + b"]" * 100_000, "application/json", b"Bearer t"),
        (b"u:i", "text/plain", b"Bearer \xff"),
        (b"\n".join([b"bomb:i1:" + b"1" * 400] * 1000), "text/plain", b"Bearer t"),
        (b"u:i\n" * 600_000, "text/plain", b"Bearer t"),
    ):
        connection.putrequest("POST", "/interactions")
        connection.putheader("Content-Type", ctype)
        connection.putheader("Authorization", auth)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        response.read()
        answers.append(response.status)
        connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    alive = builder.proc.poll() is None and server.proc.poll() is None
    counts = manifest["builder"]["rejected"]
    dead = manifest["builder"]
    builder.stop()
    server.stop()
    report.append(
        f"| poison records in a live stream ({per_kind} of each of {len(POISON)} kinds: "
        f"{', '.join(POISON)}) | rejected by reason: {json.dumps(counts)}; dead letters "
        f"{dead['dead_letters']} ({dead['dead_letters_truncated']} truncated, "
        f"{dead['dead_letter_failures']} failed) | builder and server still running: "
        f"**{'yes' if alive else 'NO'}**; retrained and published after them; /recommend and "
        f"/because for the 1e30 user: {statuses} |"
    )
    report.append(
        f"| hostile POST /interactions (nested JSON, non-UTF-8 Authorization, 1,000 weight bombs, "
        f"a 2.4 MB body) | answers {answers} | no 500 |"
    )


def broker_restarts(restarts: int, report: list[str]) -> None:
    port, model_dir, http_port = free_port(), WORK / "reset-model", free_port()
    broker = EmbeddedBroker(port=port, log_file=WORK / "reset-broker.log").start()
    kafka = KafkaSettings(broker.bootstrap_servers)
    create_topic(kafka, "events", partitions=2)
    produce(kafka, "events", TASTE.values(*TASTE.sample(4000, np.random.default_rng(4))))
    builder = Daemon(
        "reset-builder", builder_args("events", model_dir, kafka, "500", "100000", "-b")
    )
    server = Daemon(
        "reset-server",
        ["serve", "--model-dir", str(model_dir), "--port", str(http_port), "--topic", "events",
         "--bootstrap-servers", kafka.bootstrap_servers],
    )  # fmt: skip
    base = f"http://127.0.0.1:{http_port}"
    wait(lambda: get(f"{base}/ready")[0] == 200, 60, "a model")
    recovered = []
    for k in range(restarts):
        broker.stop()
        time.sleep(2)
        started = time.monotonic()
        broker = EmbeddedBroker(port=port, log_file=WORK / "reset-broker.log").start()
        create_topic(kafka, "events", partitions=2)
        produce(
            kafka, "events", [format_event(f"gen{k}-{j % 50}", f"i{j % 40}") for j in range(600)]
        )
        wait(
            lambda k=k: (
                (m := latest_manifest(model_dir))
                and m["window"]["events"] == 600
                and all(
                    u.startswith(f"gen{k}-")
                    for u in load_published(LocalStore(model_dir), m["version"]).user_ids
                )
            ),
            120,
            f"restart {k}",
        )
        produce(kafka, "events", [format_event(f"probe{k}", "i3")])
        wait(
            lambda k=k: get(f"{base}/recommend?user=probe{k}")[1].get("fresh_events") == 1,
            60,
            "fold-in",
        )
        recovered.append(time.monotonic() - started)
    lines = server.output().count("\n")
    builder.stop()
    server.stop()
    broker.stop()
    report.append(
        f"| in-memory broker restarted empty under a running builder and server | {restarts} "
        f"restarts | each time the window held only the new log and the server folded a new-log "
        f"event in; recovery (restart to both done) median {np.median(recovered):.1f} s, max "
        f"{max(recovered):.1f} s; server log {lines} lines in all |"
    )


def swaps(kafka: KafkaSettings, seconds: float, report: list[str]) -> None:
    topic, model_dir, port = "swaps", WORK / "swaps-model", free_port()
    create_topic(kafka, topic, partitions=2)
    rng = np.random.default_rng(5)
    produce(kafka, topic, TASTE.values(*TASTE.sample(20_000, rng)))
    builder = Daemon(
        "swaps-builder",
        builder_args(topic, model_dir, kafka, "0", "50000", "-b", "--retrain-interval", "1"),
    )
    server = Daemon("swaps-server", ["serve", "--model-dir", str(model_dir), "--port", str(port)])
    base = f"http://127.0.0.1:{port}"
    wait(lambda: get(f"{base}/ready")[0] == 200, 60, "a model")
    first = get(f"{base}/ready")[1]["model_version"]
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            produce(kafka, topic, TASTE.values(*TASTE.sample(200, rng)))
            time.sleep(0.2)

    feeder = threading.Thread(target=traffic)
    feeder.start()
    statuses: list[int] = []
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        statuses.append(get(f"{base}/recommend?user=u{len(statuses) % 2000}")[0])
        latencies.append(time.perf_counter() - started)
    stop.set()
    feeder.join()
    last = get(f"{base}/ready")[1]["model_version"]
    builder.stop()
    server.stop()
    failed = sum(s != 200 for s in statuses)
    report.append(
        f"| snapshots published about every second under requests | {len(statuses):,} requests "
        f"over {seconds:.0f} s, {last - first} swaps | failed: **{failed}**; latency p50 "
        f"{1000 * np.median(latencies):.1f} ms, max {1000 * max(latencies):.0f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--swap-seconds", type=float, default=20.0)
    args = parser.parse_args()
    report = [
        f"Command: `.venv/bin/python bench/faults.py --kills {args.kills} --restarts "
        f"{args.restarts} --swap-seconds {args.swap_seconds:g}` ({time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores)",
        "",
        "| fault | what was done | outcome |",
        "| --- | --- | --- |",
    ]
    try:
        with EmbeddedBroker(log_file=WORK / "broker.log") as broker:
            kafka = KafkaSettings(broker.bootstrap_servers)
            kills(kafka, args.kills, report)
            poison(kafka, report)
            swaps(kafka, args.swap_seconds, report)
        broker_restarts(args.restarts, report)
    finally:
        print("\n".join(report))
        print(f"\n(logs in {WORK})")
    shutil.rmtree(WORK / "kills-model", ignore_errors=True)


if __name__ == "__main__":
    main()
