"""The online loop through a real broker and real processes (issue 16): every answer has an id
and is logged; later interactions are attributed (implicitly and by id) exactly as a ground
truth the test computes, across a server restart, with two replicas, and across a restart of
the builder's monitor; experiments interleave a challenger and reach a verdict."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid

import numpy as np
import pytest

from recommender.broker import free_port

from .conftest import TASTE, builder_command, get_json, produce, server_command, wait_until


def _post(url: str, body) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _online(base: str) -> dict:
    return get_json(f"{base}/status")[1].get("online") or {}


SEEN: dict[str, object] = {}


def _day(base: str) -> tuple[int, int]:
    online = _online(base)
    day = (online.get("periods") or {}).get("24h") or {}
    SEEN[base] = online
    return day.get("exposures", 0), day.get("hits", 0)


def test_attribution_equals_the_ground_truth_across_restarts_and_replicas(
    kafka, topic, daemons, tmp_path
):
    name = topic(2)
    exposures = f"exposures-{uuid.uuid4().hex[:8]}"
    produce(kafka, name, TASTE.values(*TASTE.sample(3000, np.random.default_rng(3))))
    model_dir = tmp_path / "model"
    online = ["--exposures-topic", exposures, "--experiments-topic", "off"]
    builder_args = builder_command(
        name, model_dir, kafka.bootstrap_servers, "3000", "100000", "-b", *online
    )
    builder = daemons("builder", builder_args)
    ports = [free_port(), free_port()]

    def server(k: int):
        return daemons(
            f"server{k}",
            server_command(
                model_dir, ports[k], "--topic", name, "--enable-ingest", "--poll-interval", "0.2",
                "--bootstrap-servers", kafka.bootstrap_servers, *online,
            ),
        )  # fmt: skip

    servers = [server(0), server(1)]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    for base in bases:
        wait_until(lambda b=base: get_json(f"{b}/ready")[0] == 200, timeout=60, what="a model")

    shown: list[tuple[str, str, list[str]]] = []  # (user, id, items), in the order answered
    expected_hits: set[str] = set()
    events: list[dict] = []

    def answer(k: int, user: str) -> None:
        status, body = get_json(f"{bases[k % 2]}/recommend?user={user}&n=5")
        assert status == 200 and len(body["recommendation_id"]) == 12
        shown.append((user, body["recommendation_id"], [i["item"] for i in body["items"]]))

    def act(k: int) -> None:
        """Likes and dislikes of shown items, implicit or by id, and one of an unshown item."""
        user, rec_id, items = shown[k]
        if k % 4 == 0:  # implicit: the newest answer to this user showing it
            events.append({"user": user, "item": items[1]})
            expected_hits.add(rec_id)
        elif k % 4 == 1:  # explicit, by id
            events.append({"user": user, "item": items[0], "recommendation_id": rec_id})
            expected_hits.add(rec_id)
        elif k % 4 == 2:  # a dislike of a shown item: negative feedback, never a hit
            events.append({"user": user, "item": items[2], "weight": -1})
        else:  # an item it was not shown (new to everyone, so no answer had it): not attributed
            events.append({"user": user, "item": f"unshown-{k}"})

    for k in range(40):
        answer(k, f"u{k}")
    for k in range(40):
        act(k)
    status, body = _post(f"{bases[0]}/interactions", events)
    assert status == 200 and body["accepted"] == len(events), body
    for base in bases:  # every replica shows the same figures, from the monitor
        wait_until(
            lambda b=base: _day(b) == (40, len(expected_hits)),
            timeout=60,
            what=f"the monitor's counts on {base}",
        )

    # A server restarts; its new answers count too, and nothing is counted twice.
    servers[1].stop()
    servers[1] = server(1)
    wait_until(lambda: get_json(f"{bases[1]}/ready")[0] == 200, timeout=60, what="the restart")
    events.clear()
    for k in range(40, 60):
        answer(k, f"u{k}")
    for k in range(40, 60):
        act(k)
    assert _post(f"{bases[1]}/interactions", events)[0] == 200
    try:
        wait_until(lambda: _day(bases[1]) == (60, len(expected_hits)), timeout=60, what="after it")
    except AssertionError:
        raise AssertionError(json.dumps(SEEN[bases[1]])[:3000]) from None

    # The monitor (in the builder) restarts from its checkpoint: the same totals, then more.
    assert builder.stop() == 0
    builder = daemons("builder-again", builder_args)
    events.clear()
    for k in range(60, 70):
        answer(k, f"u{k}")
    for k in range(60, 70):
        act(k)
    assert _post(f"{bases[0]}/interactions", events)[0] == 200
    try:
        wait_until(
            lambda: _day(bases[0]) == (70, len(expected_hits)),
            timeout=90,
            what="the counts after the monitor's restart",
        )
    except AssertionError:
        raise AssertionError(json.dumps(SEEN[bases[0]])[:3000]) from None
    hour = _online(bases[0])["periods"]["1h"]
    assert hour["negatives"] >= 17  # the dislikes of shown items
    assert hour["explicit"] >= 17
    assert builder.stop() == 0

    # Offline, from dumps of the two topics: the same figures (recommender evaluate --exposures).
    log_file, events_file = tmp_path / "exposures.jsonl", tmp_path / "events.csv"
    log_file.write_bytes(b"\n".join(v for _, _, v in _dump(kafka, exposures)) + b"\n")
    with events_file.open("w") as out:
        out.write("user,item,weight,timestamp\n")
        for _, ts, value in _dump(kafka, name):
            user, item, *weight = value.decode().split(":")
            out.write(f"{user},{item},{weight[0] if weight else 1},{ts / 1000:.3f}\n")
    done = subprocess.run(
        [sys.executable, "-m", "recommender", "evaluate", str(events_file), "--exposures",
         str(log_file), "--output-dir", str(tmp_path / "report"), "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    offline = json.loads((tmp_path / "report" / "report.json").read_text())["online"]
    day = offline["live"]["periods"]["24h"]
    assert (day["exposures"], day["hits"]) == (70, len(expected_hits))
    assert "Online figures from the exposure log" in (tmp_path / "report" / "report.md").read_text()


def _cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "recommender", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _dump(kafka, name: str) -> list[tuple[int, int, bytes]]:
    """Every record of a topic: (partition, timestamp ms, value)."""
    from confluent_kafka import TopicPartition

    from recommender.kafka import topic_partitions

    consumer = kafka.consumer()
    consumer.assign([TopicPartition(name, p, 0) for p in topic_partitions(consumer, name)])
    records, idle = [], 0
    while idle < 5:
        batch = [m for m in consumer.consume(10_000, timeout=0.5) if m.error() is None]
        idle = 0 if batch else idle + 1
        records += [(m.partition(), m.timestamp()[1], m.value()) for m in batch]
    consumer.close()
    return records


def _clicks(base: str, rng: np.random.Generator, users: list[str], rounds: int) -> int:
    """Simulated users: each looks at their answer and likes items of their own taste group
    with a position bias, naming the answer. Returns how many answers were shown."""
    events = []
    for _ in range(rounds):
        user = users[int(rng.integers(len(users)))]
        status, body = get_json(f"{base}/recommend?user={user}&n=8")
        assert status == 200
        group = TASTE.user_group(user)
        for position, entry in enumerate(body["items"]):
            item = entry["item"]
            if TASTE.item_group(item) == group and rng.random() < 0.7 / (1 + position):
                events.append(
                    {"user": user, "item": item, "recommendation_id": body["recommendation_id"]}
                )
    for lo in range(0, len(events), 500):
        assert _post(f"{base}/interactions", events[lo : lo + 500])[0] == 200
    return rounds


@pytest.mark.parametrize("better", ["challenger", "champion"])
def test_interleaving_finds_the_better_model_within_1600_answers(
    kafka, topic, daemons, tmp_path, better
):
    """One model learnt the planted tastes, the other noise: interleaving credits the better
    model's items with the likes, and the monitor names it within 1,600 answers."""
    from tests.unit.helpers import publish_window

    name = topic(2)
    rng = np.random.default_rng(5)
    noise = list(zip(rng.integers(0, 200, 4000), rng.integers(0, 80, 4000), strict=True))
    tastes = list(zip(*TASTE.sample(6000, np.random.default_rng(6)), strict=True))
    champion_data, challenger_data = (noise, tastes) if better == "challenger" else (tastes, noise)
    produce(kafka, name, [f"u{u}:i{i}".encode() for u, i in champion_data])
    exposures = f"exposures-{uuid.uuid4().hex[:8]}"
    control = f"experiments-{uuid.uuid4().hex[:8]}"
    online = ["--exposures-topic", exposures, "--experiments-topic", control]
    model_dir, challenger_dir = tmp_path / "model", tmp_path / "challenger"
    builder = daemons(
        "builder",
        builder_command(name, model_dir, kafka.bootstrap_servers, str(len(champion_data)),
                        "100000", "-b", "--retrain-interval", "3600", *online),
    )  # fmt: skip
    publish_window(
        challenger_dir,
        1,
        [(f"u{u}", f"i{i}") for u, i in challenger_data],
        factors=8,
        manifest={"topic": name},
    )
    port = free_port()
    daemons(
        "server",
        server_command(
            model_dir, port, "--topic", name, "--enable-ingest", "--poll-interval", "0.2",
            "--bootstrap-servers", kafka.bootstrap_servers, *online,
            "--challenger-model-dir", str(challenger_dir), "--experiment", "interleave",
        ),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: get_json(f"{base}/ready")[0] == 200, timeout=60, what="a model")
    wait_until(
        lambda: (get_json(f"{base}/experiments")[1].get("challenger") or {}).get("version") == 1,
        timeout=30,
        what="the challenger",
    )
    _, body = get_json(f"{base}/recommend?user=u3&n=8")
    assert body["arm"] == "interleaved"
    shown = 0
    verdict = "undecided"
    while verdict == "undecided" and shown < 1600:
        shown += _clicks(base, rng, [TASTE.user_id(u) for u in range(200)], 200)
        try:
            verdict = wait_until(
                lambda: (
                    (v := get_json(f"{base}/experiments")[1].get("verdict")) != "undecided" and v
                ),
                timeout=8,
                what="a verdict",
            )
        except AssertionError:
            verdict = "undecided"
    experiments = get_json(f"{base}/experiments")[1]
    assert verdict == better, json.dumps(experiments)[:3000]
    assert experiments["results"]["arms"]["impressions_with_a_like"] >= 100
    shown_text = _cli("experiment", "show", "--server", base)
    assert f"Verdict      {better}" in shown_text and "interleaved answers" in shown_text
    # Switched to A/B at run time with the CLI, through the experiments topic.
    started = _cli("experiment", "start", "ab", "--share", "0.5", "--server", base)
    assert "(ab) on every replica" in started
    wait_until(lambda: get_json(f"{base}/experiments")[1]["mode"] == "ab", timeout=20, what="ab")
    arms = {get_json(f"{base}/recommend?user=u{k}&n=3")[1]["arm"] for k in range(40)}
    assert arms == {"champion", "challenger"}
    assert _post(f"{base}/experiments", {"mode": "sideways"})[0] == 400
    assert "stopped the experiment" in _cli("experiment", "stop", "--server", base)
    wait_until(lambda: get_json(f"{base}/experiments")[1]["mode"] == "off", timeout=20, what="off")
    assert "arm" not in get_json(f"{base}/recommend?user=u3&n=3")[1]
    assert builder.stop() == 0
