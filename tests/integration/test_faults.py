"""The fault suite: poison records, broker resets, crafted snapshots, kills, through real processes.

Each test reproduces a failure found by a fault campaign (issue 10) and asserts the documented
behaviour (RELIABILITY.md) instead.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition

from recommender.broker import EmbeddedBroker, free_port
from recommender.events import format_event
from recommender.kafka import KafkaSettings, create_topic
from recommender.snapshot import load_published, load_snapshot
from recommender.store import LocalStore

from .conftest import (
    ROOT,
    TASTE,
    builder_command,
    get_json,
    latest_snapshot,
    make_bucket,
    produce,
    server_command,
    wait_for_manifest,
    wait_until,
)

BOMB = b"bomb:i1:" + b"1" * 1_000_000


def big_producer(kafka: KafkaSettings) -> Producer:
    """A producer allowed to send the oversized records a hostile client would."""
    return kafka.producer(**{"message.max.bytes": 5_000_000})


def metric(base: str, name: str) -> float:
    with __import__("urllib.request").request.urlopen(f"{base}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- poison records ----------------------------------------------------------------------------


def test_poison_records_stop_neither_builder_nor_server(kafka, system):
    """A 1 MB weight made the builder allocate gigabytes and exit on every restart and killed the
    server's follower; a 1e30 weight froze every retrain (NaN) and gave 500s for its user."""
    name, _, base, model_dir, builder, server = system(retrain_every="500")
    first = get_json(f"{base}/ready")[1]["model_version"]
    bad = big_producer(kafka)
    bad.produce(name, BOMB, key=b"bomb")
    item = TASTE.group_items(0)[0]
    bad.produce(name, format_event("evil", item, 1e30), key=b"evil")
    bad.produce(name, format_event("evil", TASTE.group_items(0)[1]), key=b"evil")
    assert bad.flush(30) == 0
    produce(kafka, name, TASTE.values(*TASTE.sample(600, np.random.default_rng(3))))
    manifest = wait_for_manifest(
        model_dir,
        lambda m: m["version"] > first and m["builder"]["rejected"].get("too_long") == 1,
        what="a retrain after the poison records",
    )
    assert builder.proc.poll() is None and server.proc.poll() is None
    snapshot = load_snapshot(LocalStore(model_dir).path_of(manifest["version"]))
    assert float(np.abs(snapshot.arrays["seen_weights"]).max()) <= 1000.0
    wait_until(
        lambda: get_json(f"{base}/ready")[1]["model_version"] >= manifest["version"],
        timeout=10,
        what="the server to serve it",
    )
    for path in (
        "/recommend?user=evil",
        f"/because?user=evil&item={TASTE.group_items(0)[2]}",
        "/users/evil/items",
    ):
        status, body = get_json(base + path)
        assert status == 200, (path, body)
    # The follower is alive: a new user's event still reaches fold-in within seconds.
    produce(kafka, name, [format_event("after-bomb", item)])
    wait_until(
        lambda: get_json(f"{base}/recommend?user=after-bomb")[1].get("fresh_events") == 1,
        timeout=10,
        what="fold-in after the bomb",
    )
    assert metric(base, 'recommender_followed_events_total{outcome="malformed"}') >= 1
    assert metric(base, "recommender_follower_errors_total") == 0
    # A restart reads the bomb again (it lies after the snapshot's position): no crash loop.
    assert builder.stop() == 0
    assert "Traceback" not in builder.output()


def test_an_oversized_dead_letter_is_truncated_and_counted_never_fatal(
    kafka, topic, daemons, tmp_path
):
    """A 2 MB malformed record once raised MSG_SIZE_TOO_LARGE inside the rejection path: a crash
    loop and no snapshot ever."""
    name, dead = topic(1), topic(1, prefix="dead")
    bad = big_producer(kafka)
    bad.produce(name, b"x" * 2_000_000)
    assert bad.flush(30) == 0
    produce(kafka, name, [format_event(f"u{k}", f"i{k % 7}") for k in range(100)])
    model_dir = tmp_path / "model"
    builder = daemons(
        "builder",
        builder_command(
            name,
            model_dir,
            kafka.bootstrap_servers,
            "100",
            "1000",
            "-b",
            "--dead-letter-topic",
            dead,
        ),
    )
    manifest = wait_for_manifest(model_dir, lambda m: m["window"]["events"] == 100)
    assert manifest["builder"]["rejected"] == {"too_long": 1}
    consumer = kafka.consumer()
    consumer.assign([TopicPartition(dead, 0, 0)])
    letters = wait_until(lambda: consumer.consume(10, timeout=0.5), timeout=20, what="the letter")
    consumer.close()
    headers = dict(letters[0].headers())
    assert headers["reason"] == b"too_long"
    assert headers["truncated"] == b"2000000"
    assert headers["source"] == f"{name}/0/0".encode()
    assert len(letters[0].value()) == 64 * 1024
    assert builder.stop() == 0


def test_hostile_http_bodies_and_headers_get_4xx_never_500(kafka, system):
    _, _, base, *_ = system(server_args=["--enable-ingest", "--api-token", "s3cret"])
    port = int(base.rsplit(":", 1)[1])

    def post(body: bytes, content_type: str, auth: bytes = b"Bearer s3cret"):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.putrequest("POST", "/interactions")
        connection.putheader("Content-Type", content_type)
        connection.putheader("Authorization", auth)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        answer = response.status, json.loads(response.read() or b"{}")
        connection.close()
        return answer

    assert post(b"[" * 100_000 + b"]" * 100_000, "application/json")[0] == 400
    assert post(b"u:i", "text/plain", auth=b"Bearer \xff\xfe")[0] == 401
    # A 424 kB body of weight bombs: answered with per-event rejections, the loop stays free.
    lines = b"\n".join([b"bomb:i1:" + b"1" * 400] * 1000 + [b"ok:i1"])
    latencies: list[float] = []
    stop = threading.Event()

    def ping():
        while not stop.is_set():
            started = time.perf_counter()
            get_json(f"{base}/health")
            latencies.append(time.perf_counter() - started)

    pinger = threading.Thread(target=ping)
    pinger.start()
    try:
        status, body = post(lines, "text/plain")
    finally:
        stop.set()
        pinger.join()
    assert status == 200 and body["accepted"] == 1 and body["rejected"] == 1000
    assert body["errors"][0]["reason"] == "bad_weight"
    assert max(latencies) < 1.0
    status, body = post(b"u:i\n" * 1_000_000, "text/plain")  # 4 MB
    assert status == 413 and "error" in body


# -- broker faults -----------------------------------------------------------------------------


def own_broker(tmp_path: Path, port: int) -> EmbeddedBroker:
    return EmbeddedBroker(port=port, log_file=tmp_path / "own-broker.log").start()


def test_a_broker_that_restarts_empty_is_detected_and_its_new_log_read_whole(
    daemons, tmp_path, http_port
):
    """After an in-memory broker restart, builder and server once resumed at their old offsets:
    the new log's first events were never read and the window kept events Kafka had lost."""
    port = free_port()
    broker = own_broker(tmp_path, port)
    kafka = KafkaSettings(broker.bootstrap_servers)
    create_topic(kafka, "events", partitions=1)
    produce(kafka, "events", [format_event(f"old{k % 300}", f"i{k % 50}") for k in range(3000)])
    model_dir = tmp_path / "model"
    builder = daemons(
        "builder",
        builder_command("events", model_dir, kafka.bootstrap_servers, "400", "100000", "-b"),
    )
    server = daemons(
        "server",
        server_command(
            model_dir,
            http_port,
            "--topic",
            "events",
            "--bootstrap-servers",
            kafka.bootstrap_servers,
            "--poll-interval",
            "0.1",
        ),
    )
    base = f"http://127.0.0.1:{http_port}"
    wait_for_manifest(model_dir, lambda m: m["partitions"]["0"]["next_offset"] == 3000)
    wait_until(lambda: get_json(f"{base}/ready")[0] == 200, timeout=30, what="the server")

    broker.stop()
    time.sleep(3)  # both clients notice the broker is gone
    started = time.monotonic()
    broker = own_broker(tmp_path, port)  # same port, at once
    assert time.monotonic() - started < 5
    try:
        create_topic(kafka, "events", partitions=1)
        new = [format_event(f"new{k % 100}", f"i{k % 50}") for k in range(500)]
        produce(kafka, "events", new)  # offsets 0..499: below the recorded 3000
        manifest = wait_for_manifest(
            model_dir,
            lambda m: m["builder"]["log_resets"] >= 1 and m["window"]["events"] == 500,
            timeout=90,
            what="a snapshot of the new log only",
        )
        assert manifest["partitions"]["0"]["next_offset"] == 500
        assert manifest["builder"]["lost_window_events"] == 3000
        snapshot = load_snapshot(LocalStore(model_dir).path_of(manifest["version"]))
        assert all(u.startswith("new") for u in snapshot.user_ids)
        assert "was reset" in builder.output() or "was replaced" in builder.output()
        # The server read the new log too: a new-log user is served from the new events.
        wait_until(
            lambda: get_json(f"{base}/ready")[1]["model_version"] >= manifest["version"],
            timeout=20,
            what="the swap",
        )
        produce(kafka, "events", [format_event("newest", "i7")])
        wait_until(
            lambda: get_json(f"{base}/recommend?user=newest")[1].get("fresh_events") == 1,
            timeout=20,
            what="a new-log event in fold-in",
        )
        assert metric(base, "recommender_log_resets_total") >= 1
        assert metric(base, "recommender_kafka_up") == 1
        out = server.output()
        assert out.count("broker unreachable since") <= 3  # one per client, not one per retry
        assert out.count("Connection refused") < 20
    finally:
        broker.stop()


def test_a_builder_restarted_on_a_replaced_topic_reads_the_new_log_from_its_start(
    daemons, tmp_path
):
    """The new log had grown past the snapshot's offsets by the time the builder came back: it
    used to resume there, skipping the new log's first events as 'already read'."""
    port = free_port()
    broker = own_broker(tmp_path, port)
    kafka = KafkaSettings(broker.bootstrap_servers)
    create_topic(kafka, "events", partitions=1)
    produce(kafka, "events", [format_event(f"a{k % 100}", f"i{k % 40}") for k in range(1000)])
    model_dir = tmp_path / "model"
    args = builder_command("events", model_dir, kafka.bootstrap_servers, "500", "600", "-b")
    builder = daemons("builder", args)
    wait_for_manifest(model_dir, lambda m: m["partitions"]["0"]["next_offset"] == 1000)
    assert builder.stop() == 0
    broker.stop()
    broker = own_broker(tmp_path, port)
    try:
        create_topic(kafka, "events", partitions=1)
        produce(kafka, "events", [format_event(f"b{k % 100}", f"i{k % 40}") for k in range(2000)])
        builder = daemons("builder", args)
        manifest = wait_for_manifest(
            model_dir,
            lambda m: m["builder"]["accepted"] == 2000,
            what="every new-log event counted as new",
        )
        assert manifest["builder"]["replayed"] == 0
        assert manifest["builder"]["log_resets"] >= 1
        snapshot = load_snapshot(LocalStore(model_dir).path_of(manifest["version"]))
        assert all(u.startswith("b") for u in snapshot.user_ids)
        assert builder.stop() == 0
    finally:
        broker.stop()


def test_the_broker_command_restarts_on_the_same_port_at_once(tmp_path):
    """`recommender broker --port P` refused the port for ~60 s after a stop with clients
    connected (TIME-WAIT), and Tansu ignored SIGTERM for 5 s: now a stop with a client
    connected ends the broker, and a new one starts on the same port right away (it says it is
    ready instead of refusing the port). Every process is stopped whatever happens."""
    port = free_port()
    command = [sys.executable, "-m", "recommender", "broker", "--port", str(port)]
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        # Its output goes to a file: an unread pipe fills up and blocks the broker's exit.
        log = (tmp_path / f"broker{len(started)}.log").open("wb")
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        started.append(proc)
        wait_until(
            lambda: "broker ready" in log_text() or proc.poll() is not None,
            timeout=60,
            what="the broker's ready line",
        )
        assert "broker ready" in log_text(), log_text()
        return proc

    def log_text() -> str:
        return (tmp_path / f"broker{len(started) - 1}.log").read_text(errors="replace")

    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{port}", "group.id": "g"})
    try:
        proc = start()
        consumer.assign([TopicPartition("t", 0, 0)])
        consumer.consume(1, timeout=1.0)  # a connected client
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        proc = start()  # the same port at once: no refusal for TIME-WAIT
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        consumer.close()
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_broker_can_keep_its_log_in_s3_across_a_restart(s3_server, daemons, tmp_path):
    bucket = make_bucket(s3_server)
    port = free_port()
    args = ["broker", "--port", str(port), "--storage", f"s3://{bucket}/"]
    broker = daemons("s3-broker", args, env=s3_server)
    kafka = KafkaSettings(f"127.0.0.1:{port}")
    wait_until(lambda: "broker ready" in broker.output(), timeout=30, what="the broker")
    create_topic(kafka, "kept", partitions=1)
    produce(kafka, "kept", [f"u{k}:i{k}".encode() for k in range(300)])
    broker.stop(signal.SIGKILL)
    broker = daemons("s3-broker", args, env=s3_server)
    wait_until(lambda: broker.output().count("broker ready") == 2, timeout=30, what="a restart")
    consumer = kafka.consumer()
    consumer.assign([TopicPartition("kept", 0, 0)])
    got: list = []
    wait_until(
        lambda: (
            got.extend(m for m in consumer.consume(500, timeout=0.5) if not m.error())
            or len(got) >= 300
        ),
        timeout=30,
        what="the events back",
    )
    consumer.close()
    assert [m.value() for m in got] == [f"u{k}:i{k}".encode() for k in range(300)]
    assert broker.stop() == 0


# -- the window and restarts -------------------------------------------------------------------


def newest_pairs(kafka, topic, partitions, count):
    """The newest ``count`` events of a finished topic by (timestamp, offset, partition), as
    summed (user, item) weights: what the window must hold."""
    consumer = kafka.consumer()
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records = []
    idle = 0
    while idle < 5:
        batch = [m for m in consumer.consume(10_000, timeout=0.5) if m.error() is None]
        idle = 0 if batch else idle + 1
        records += [(m.timestamp()[1], m.offset(), m.partition(), m.value()) for m in batch]
    consumer.close()
    records.sort()
    pairs: dict = {}
    for _, _, _, value in records[-count:]:
        user, item = value.decode().split(":")[:2]
        pairs[(user, item)] = pairs.get((user, item), 0.0) + 1.0
    return pairs


def snapshot_pairs(model_dir):
    snapshot = load_snapshot(latest_snapshot(model_dir)[1])
    indptr = snapshot.arrays["seen_indptr"]
    pairs = {}
    for row, user in enumerate(snapshot.user_ids):
        for k in range(indptr[row], indptr[row + 1]):
            item = snapshot.item_ids[snapshot.arrays["seen_indices"][k]]
            pairs[(user, item)] = float(snapshot.arrays["seen_weights"][k])
    return pairs


def test_a_backlog_window_holds_the_newest_events_of_every_partition(
    kafka, topic, daemons, tmp_path
):
    """With -b on a finished 4-partition topic, the window once held only the partition read
    last: 25 % of the users."""
    name = topic(4)
    users = np.repeat(np.arange(4000), 10)
    np.random.default_rng(5).shuffle(users)
    produce(
        kafka, name, [format_event(f"u{u}", f"i{(u * 7 + k) % 300}") for k, u in enumerate(users)]
    )
    model_dir = tmp_path / "model"
    builder = daemons(
        "builder", builder_command(name, model_dir, kafka.bootstrap_servers, "40000", "10000", "-b")
    )
    wait_for_manifest(model_dir, lambda m: m["builder"]["accepted"] == 40_000, timeout=90)
    assert builder.stop() == 0
    expected = newest_pairs(kafka, name, 4, 10_000)
    got = snapshot_pairs(model_dir)
    assert got == expected
    assert len({user for user, _ in got}) > 2000  # one partition alone would be ~1,000 users


def test_builders_killed_at_any_moment_resume_to_the_same_window(kafka, topic, daemons, tmp_path):
    """kill -9 at random moments (start-up, replay, training, writing a snapshot), several times:
    every published snapshot loads, the final window equals the newest events of the topic, and
    the gate does not refuse a restarted builder's model for being judged on replayed events."""
    name = topic(2)
    model_dir = tmp_path / "model"
    args = builder_command(
        name,
        model_dir,
        kafka.bootstrap_servers,
        "1000",
        "6000",
        "-b",
        "--gate-min-events",
        "50",
        "--gate-holdout",
        "0.1",
    )
    rng = np.random.default_rng(11)
    for round_ in range(5):
        produce(kafka, name, TASTE.values(*TASTE.sample(2000, rng)))
        builder = daemons("builder", args)
        if round_ == 0:  # one killed builder has published, however slow the machine is
            wait_for_manifest(model_dir, lambda m: True, timeout=90, what="a first snapshot")
        time.sleep(float(rng.uniform(0.0 if round_ == 0 else 0.5, 3.0)))
        builder.stop(signal.SIGKILL)
    builder = daemons("builder", args)
    produce(kafka, name, TASTE.values(*TASTE.sample(1000, rng)))
    manifest = wait_for_manifest(
        model_dir,
        lambda m: sum(p["next_offset"] for p in m["partitions"].values()) == 11_000,
        timeout=90,
        what="a snapshot of every event",
    )
    assert builder.stop() == 0
    store = LocalStore(model_dir)
    for version in store.versions():
        load_published(store, version)
    assert snapshot_pairs(model_dir) == newest_pairs(kafka, name, 2, 6000)
    assert manifest["builder"]["quality_rejections"] == 0
    counts = manifest["builder"]
    assert 1 <= counts["retrains_published"] <= counts["retrains_started"], counts
    assert builder.output().count("resuming from snapshot") >= 1


# -- crafted snapshots -------------------------------------------------------------------------


def test_crafted_snapshots_are_quarantined_or_skipped_and_never_loop(kafka, system, daemons):
    name, _, base, model_dir, builder, server = system(retrain_every="1000")
    store = LocalStore(model_dir)
    served = get_json(f"{base}/ready")[1]["model_version"]
    # An operator restores a backup as a higher number: refused once, never reloaded in a loop.
    shutil.copytree(store.path_of(served), model_dir / "v000000000900")
    time.sleep(1.5)
    assert get_json(f"{base}/ready")[1]["model_version"] == served
    assert server.output().count("rejected snapshot v900") == 1
    assert metric(base, "recommender_model_swap_failures_total") == 1
    # A new publication from the builder is still picked up (numbered past the copy).
    produce(kafka, name, TASTE.values(*TASTE.sample(1000, np.random.default_rng(4))))
    wait_until(lambda: get_json(f"{base}/ready")[1]["model_version"] > 900, timeout=60, what="v901")
    assert builder.stop() == 0
    # Unreadable newest snapshots: a nested manifest, and files as a list. The builder moves
    # them aside, resumes from the good one and publishes past them; the server counts each once.
    good = store.latest()
    nested = model_dir / f"v{good + 1:012d}"
    shutil.copytree(store.path_of(good), nested)
    (nested / "manifest.json").write_text("[" * 50_000 + "]" * 50_000)
    listed = model_dir / f"v{good + 2:012d}"
    shutil.copytree(store.path_of(good), listed)
    manifest = json.loads((listed / "manifest.json").read_text())
    manifest["files"] = list(manifest["files"])
    (listed / "manifest.json").write_text(json.dumps(manifest))
    wait_until(
        lambda: f"rejected snapshot v{good + 2}" in server.output(), timeout=10, what="rejections"
    )
    restarted = daemons("builder-restarted", list(builder.proc.args[3:]))
    produce(kafka, name, TASTE.values(*TASTE.sample(1000, np.random.default_rng(5))))
    wait_until(
        lambda: get_json(f"{base}/ready")[1]["model_version"] > good + 2,
        timeout=60,
        what="a publication past the unreadable ones",
    )
    assert restarted.proc.poll() is None
    assert restarted.output().count("moved unreadable snapshot") == 2
    assert len([p for p in model_dir.iterdir() if p.name.startswith(".quarantine-")]) == 2
    out = server.output()
    assert out.count(f"rejected snapshot v{good + 1}") == 1
    assert out.count(f"rejected snapshot v{good + 2}") == 1
    assert "Traceback" not in out
    assert restarted.stop() == 0
