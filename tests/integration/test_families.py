"""Every model family through the real broker and real processes: pinned with ``--model``, served
on every route, fresh events counted at once; and where order is the signal, ``--model auto``
ends up serving the sequence family, as every reader shows."""

from __future__ import annotations

import time

import numpy as np
import pytest

from recommender.events import format_event
from recommender.synthetic import SessionModel

from .conftest import (
    TASTE,
    builder_command,
    get_json,
    produce,
    server_command,
    wait_until,
)

SESSIONS = SessionModel(items=300)


def start(kafka, topic, daemons, tmp_path, http_port, values, *builder_args):
    name = topic(2)
    produce(kafka, name, values)
    model_dir = tmp_path / "model"
    daemons(
        "builder",
        builder_command(name, model_dir, kafka.bootstrap_servers, str(len(values)), "100000",
                        "-b", *builder_args),
    )  # fmt: skip
    base = serve(kafka, daemons, model_dir, http_port, name)
    wait_until(lambda: get_json(f"{base}/ready")[0] == 200, timeout=90, what="a model")
    return name, base


def serve(kafka, daemons, model_dir, http_port, name) -> str:
    """A server following topic ``name`` for fresh events; returns its base URL."""
    daemons(
        "server",
        server_command(model_dir, http_port, "--topic", name, "--poll-interval", "0.1",
                       "--bootstrap-servers", kafka.bootstrap_servers),
    )  # fmt: skip
    return f"http://127.0.0.1:{http_port}"


def group_share(items, group):
    return np.mean([TASTE.item_group(i["item"]) == group for i in items])


@pytest.mark.parametrize("family", ["ease", "rp3beta", "knn", "seq"])
def test_a_pinned_family_serves_every_route_and_counts_fresh_events_at_once(
    kafka, topic, daemons, tmp_path, http_port, family
):
    values = TASTE.values(*TASTE.sample(4000, np.random.default_rng(7)))
    name, base = start(kafka, topic, daemons, tmp_path, http_port, values, "--model", family)
    _, info = get_json(f"{base}/model")
    assert info["family"] == {"seq": "sequence"}.get(family, family)
    assert info["has_user_vectors"] is False
    assert info["manifest"]["model"]["family"] == info["family"]

    # A known user: their group's items, none they have seen.
    user = "u3"
    status, body = get_json(f"{base}/recommend?user={user}&n=10")
    assert status == 200 and body["source"] == "personalised", body
    assert group_share(body["items"], TASTE.user_group(user)) >= 0.7, body["items"]
    _, seen = get_json(f"{base}/users/{user}/items")
    assert not {i["item"] for i in seen["window"]} & {i["item"] for i in body["items"]}

    # A newcomer's three clicks count at once: no solve, the history is the model's input.
    group = 1
    clicks = TASTE.group_items(group)[:3]
    sent = time.monotonic()
    produce(kafka, name, [format_event("visitor", item) for item in clicks])
    fresh = wait_until(
        lambda: (
            (b := get_json(f"{base}/recommend?user=visitor&n=5")[1]).get("fresh_events") == 3 and b
        ),
        timeout=5,
        what="the clicks",
        every=0.02,
    )
    print(f"{family}: fresh events reflected after {(time.monotonic() - sent) * 1000:.0f} ms")
    assert fresh["source"] == "fold-in"
    assert group_share(fresh["items"], group) >= 0.8, fresh["items"]
    assert not set(clicks) & {i["item"] for i in fresh["items"]}

    # An anonymous session, similar items, an explanation, paging; similar users: a clear 400.
    _, anonymous = get_json(f"{base}/recommend?items={','.join(clicks)}&n=5")
    assert group_share(anonymous["items"], group) >= 0.8, anonymous
    item = TASTE.group_items(2)[0]
    _, similar = get_json(f"{base}/similar?item={item}&n=5")
    assert len(similar["items"]) == 5 and group_share(similar["items"], 2) >= 0.8, similar
    top = body["items"][0]["item"]
    status, explained = get_json(f"{base}/because?user={user}&item={top}")
    assert status == 200 and explained["because"], explained
    _, page = get_json(f"{base}/recommend?user={user}&n=5&offset=5")
    assert [i["item"] for i in page["items"]] == [i["item"] for i in body["items"][5:10]]
    status, refused = get_json(f"{base}/similar-users?user={user}")
    assert status == 400 and "no user vectors" in refused["message"]


def test_a_sequence_model_answers_what_comes_after_the_newest_event(
    kafka, topic, daemons, tmp_path, http_port
):
    successors, walks = SESSIONS.draw(600, 20, np.random.default_rng(3))
    values = SESSIONS.values(walks)
    name, base = start(kafka, topic, daemons, tmp_path, http_port, values, "--model", "sequence")
    hits = 0
    for user in range(200):
        _, body = get_json(f"{base}/recommend?user=s{user}&n=3")
        hits += f"i{successors[walks[user, -1], 0]}" in {i["item"] for i in body["items"]}
    # The planted next item ranks in the top 3 for most users (by chance: 1 %).
    assert hits >= 100, hits
    # A fresh event moves the answer to what follows it.
    item = next(i for i in range(SESSIONS.items) if i not in set(walks[0].tolist()))
    produce(kafka, name, [format_event("s0", f"i{item}")])
    body = wait_until(
        lambda: (b := get_json(f"{base}/recommend?user=s0&n=3")[1]).get("fresh_events") == 1 and b,
        timeout=5,
        what="the fresh event",
        every=0.02,
    )
    assert body["items"][0]["item"] == f"i{successors[item, 0]}", body


def test_where_order_is_the_signal_auto_ends_up_serving_the_sequence_family(
    kafka, topic, daemons, tmp_path, http_port
):
    _, walks = SESSIONS.draw(600, 20, np.random.default_rng(4))
    values = SESSIONS.values(walks)
    name = topic(2)
    produce(kafka, name, values)
    model_dir = tmp_path / "model"
    command = builder_command(
        name, model_dir, kafka.bootstrap_servers, str(len(values)), "100000", "-b", factors=None
    )
    command[command.index("--tune") + 1] = "on"
    daemons("builder", [*command, "--tune-budget", "8"])
    base = serve(kafka, daemons, model_dir, http_port, name)
    info = wait_until(
        lambda: (b := get_json(f"{base}/model")[1]).get("family") == "sequence" and b,
        timeout=120,
        what="a tuned sequence model",
    )
    tuning = info["manifest"]["tuning"]
    assert tuning["adopted"] and "sequence vs als" in tuning["reason"], tuning
    _, status = get_json(f"{base}/status")
    assert status["model"]["family"] == "sequence", status["model"]
