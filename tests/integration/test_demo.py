"""`recommender demo` (what `make demo` runs): ready message, a working system, clean Ctrl-C;
and its features together: an interleaved experiment with a differently shaped challenger, the
click model, and catalogue changes, with no 500 and no hidden item shown."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

from recommender.broker import free_port
from recommender.kafka import KafkaSettings

from .conftest import ROOT, get_json, produce, wait_until


def test_demo_starts_everything_answers_and_stops_cleanly_on_ctrl_c(tmp_path):
    port, broker_port = free_port(), free_port()
    log = tmp_path / "demo.out"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recommender",
                "demo",
                "--port",
                str(port),
                "--broker-port",
                str(broker_port),
                "--workdir",
                str(tmp_path / "work"),
                "--rate",
                "3000",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_until(
                lambda: "Ctrl-C stops everything" in log.read_text(),
                timeout=90,
                what="the demo's ready message",
            )
            text = log.read_text()
            assert f"http://127.0.0.1:{port}/" in text and "curl" in text
            status, body = get_json(f"http://127.0.0.1:{port}/recommend?user=u1&n=5")
            assert status == 200 and len(body["items"]) == 5
            assert body["source"] in ("personalised", "fold-in")  # traffic keeps flowing
            status, info = get_json(f"http://127.0.0.1:{port}/model")
            assert info["catalog_items"] == 1000
            # The click model acts on what it is shown: live hits, and the experiment runs.
            wait_until(
                lambda: (
                    (get_json(f"http://127.0.0.1:{port}/status")[1].get("online") or {}).get(
                        "hits", 0
                    )
                    > 0
                ),
                timeout=60,
                what="live hits from the click model",
            )
            assert get_json(f"http://127.0.0.1:{port}/experiments")[1]["mode"] == "interleave"
            _features_together(f"http://127.0.0.1:{port}", f"127.0.0.1:{broker_port}")
            server_log = (tmp_path / "work" / "server.log").read_text(errors="replace")
            assert "Traceback" not in server_log and "error answering" not in server_log
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                code = demo.wait(30)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
                raise
    assert code == 0, log.read_text()
    time.sleep(0.5)
    children = subprocess.run(["pgrep", "-f", str(tmp_path / "work")], capture_output=True)
    assert children.stdout.strip() == b"", "the demo left processes behind"


def _features_together(base: str, bootstrap: str) -> None:
    """The demo's champion (64 factors) and challenger (8 factors) interleaved, the click model
    running, items hidden and expired on the items topic: every answer, on every answering
    route, is a 200 without a hidden item, whichever arm placed it."""
    wait_until(
        lambda: get_json(f"{base}/experiments")[1].get("challenger"),
        timeout=120,
        what="the challenger's first snapshot",
    )
    top = [i["item"] for i in get_json(f"{base}/popular?n=10")[1]["items"]]
    hidden, expired = set(top[:8]), set(top[8:])
    records = [json.dumps({"id": i, "title": i, "hidden": True}).encode() for i in sorted(hidden)]
    records += [json.dumps({"id": i, "title": i, "expires_at": 1}).encode() for i in expired]
    produce(KafkaSettings(bootstrap), "items", records, keyed=False)
    gone = hidden | expired
    wait_until(
        lambda: not gone & {i["item"] for i in get_json(f"{base}/popular?n=20")[1]["items"]},
        timeout=10,
        what="the hidden items leaving /popular",
    )
    statuses: dict[int, int] = {}
    shown: set[str] = set()
    arms: set[str] = set()
    deadline = time.monotonic() + 30
    k = 0
    while time.monotonic() < deadline:  # bounded: 30 s of a client's requests
        k += 1
        for route in (
            f"/recommend?user=u{k % 500}&n=10",
            f"/recommend?items=i{k % 97},i{k % 89}&n=10",
            f"/similar?item=i{k % 100}&n=10",
            "/popular?n=20",
        ):
            status, body = get_json(base + route)
            statuses[status] = statuses.get(status, 0) + 1
            shown |= {i["item"] for i in body.get("items", [])} & gone
            arms |= {i.get("arm", "") for i in body.get("items", [])}
    assert not {s for s in statuses if s >= 500 or s == 0}, statuses
    assert not shown, f"hidden or expired items shown: {sorted(shown)}"
    assert {"champion", "challenger"} <= arms, arms  # both arms answered, each item credited
    errors = get_json(f"{base}/status")[1]["errors"]
    assert errors["server_errors"] == {}, errors


def test_demo_fails_fast_when_its_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "recommender",
                "demo",
                "--port",
                str(port),
                "--workdir",
                str(tmp_path / "work"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"port {port} is taken" in result.stderr
    assert time.monotonic() - started < 20


def test_demo_producers_replay_movielens_and_publish_its_titles(kafka, topic):
    import json

    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from recommender.datasets import datasets_dir

    if datasets_dir() is None:
        import pytest

        pytest.skip("../shared/datasets is not on this machine")
    events, items = topic(2), topic(1, prefix="items")
    servers = ["--bootstrap-servers", kafka.bootstrap_servers, "--no-progress"]
    for script, args in (
        (
            "user_interactions_producer.py",
            ["--dataset", "movielens", "--count", "3000", "--topic", events],
        ),
        ("item_producer.py", ["--dataset", "movielens", "--topic", items]),
    ):
        done = subprocess.run(
            [sys.executable, str(ROOT / "demo" / script), *args, *servers],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    def read_all(name, partitions, expected):
        consumer = kafka.consumer()
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(partitions)])
        got, deadline = [], time.monotonic() + 30
        while len(got) < expected and time.monotonic() < deadline:
            got += [m for m in consumer.consume(5000, timeout=1.0) if m.error() is None]
        consumer.close()
        return got

    replayed = read_all(events, 2, 3000)
    assert len(replayed) == 3000
    assert all(m.value().count(b":") == 2 for m in replayed)  # user:movie:rating
    catalogue = read_all(items, 1, 9742)
    records = [json.loads(m.value()) for m in catalogue]
    toy = next(r for r in records if r["id"] == "1")
    assert toy["title"] == "Toy Story (1995)" and toy["url"].endswith("/tt0114709/")
