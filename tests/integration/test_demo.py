"""`recommender demo` (what `make demo` runs): ready message, a working system, clean Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

from recommender.broker import free_port

from .conftest import ROOT, get_json, wait_until


def test_demo_starts_everything_answers_and_stops_cleanly_on_ctrl_c(tmp_path):
    port = free_port()
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
        finally:
            demo.send_signal(signal.SIGINT)
            code = demo.wait(30)
    assert code == 0, log.read_text()
    time.sleep(0.5)
    children = subprocess.run(["pgrep", "-f", str(tmp_path / "work")], capture_output=True)
    assert children.stdout.strip() == b"", "the demo left processes behind"


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
