"""The serving pipeline with features together: a champion and a differently shaped challenger
(other factors, other items) published under the same version number, an experiment in both
modes, hidden items and new items. Each model answers through its own pipeline: no 500, no
hidden item, each arm's items its own model's."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from recommender.events import format_event
from recommender.server import ServerConfig, create_app
from recommender.server.state import EXPERIMENTS, FEED, HOLDER

from .helpers import block_events, publish_family, publish_window


def _challenger_events():
    """Other items than the champion's (group 2 and 3 items, and half of group 1's)."""
    return [
        (u.replace("g1", "g3"), i.replace("g0", "g2"))
        for u, i in block_events(users_per=12)
        if not i.startswith("g1i") or int(i[3:]) < 5
    ]


@pytest.fixture
async def experiment(aiohttp_client, tmp_path):
    champion, challenger = tmp_path / "champion", tmp_path / "challenger"
    publish_window(champion, 3, block_events(users_per=20), factors=8)
    publish_window(challenger, 3, _challenger_events(), factors=2)  # the same version, v3
    app = create_app(
        ServerConfig(
            model_dir=champion,
            challenger_model_dir=str(challenger),
            poll_interval=0.05,
            experiment="interleave",
        )
    )
    client = await aiohttp_client(app)
    for _ in range(600):  # up to 30 s: a ceiling, not a speed
        body = await (await client.get("/experiments")).json()
        if body["challenger"] is not None and body["champion"] is not None:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("champion and challenger were not both loaded")
    return client, challenger


def _feed_events(client, events, start=100_000):
    values = [format_event(u, i) for u, i in events]
    offsets = np.arange(start, start + len(values), dtype=np.int64)
    client.app[FEED].events(values, np.zeros(len(values), np.int64), offsets)


async def test_same_version_different_shapes_interleave_without_errors_or_hidden_items(
    experiment,
):
    client, _ = experiment
    hidden = ["g0i1", "g0i2", "g2i1", "g2i2", "g1i3"]
    client.app[FEED].items([json.dumps({"id": i, "hidden": True}).encode() for i in hidden])
    client.app[FEED].items([json.dumps({"id": "fresh1", "categories": ["c"]}).encode()])
    _feed_events(client, [(f"g0u{u}", "newbie") for u in range(12)])  # a new item, with events
    _feed_events(client, [("g0u1", "g0i3"), ("someone", "g2i4")], start=200_000)
    arms = set()
    holders = {"champion": client.app[HOLDER], "challenger": client.app[EXPERIMENTS].challenger}
    for mode in ("interleave", "ab"):
        assert (await client.post("/experiments", json={"mode": mode})).status == 200
        for user in ["g0u1", "g1u2", "g3u4", "someone", "nobody"]:
            for n in (3, 10, 25):
                response = await client.get("/recommend", params={"user": user, "n": str(n)})
                assert response.status == 200, await response.text()
                body = await response.json()
                shown = [i["item"] for i in body["items"]]
                assert not set(shown) & set(hidden), (mode, user, shown)
                for entry in body["items"]:
                    arm = entry.get("arm", body["arm"])
                    arms.add(arm)
                    holder = holders[arm]  # the arm's own model, or its own new items
                    known = holder.model.item_index.keys() | set(holder.new_items.view.ids)
                    assert entry["item"] in known, (arm, entry)
    assert {"champion", "challenger"} <= arms
    errors = (await (await client.get("/status")).json())["errors"]
    assert errors["server_errors"] == {}


async def test_a_refused_challenger_is_explained(aiohttp_client, tmp_path):
    champion, challenger = tmp_path / "champion", tmp_path / "challenger"
    publish_window(champion, 1, block_events())
    publish_family(challenger, 1, block_events(), "knn", {"knn_neighbours": 4})
    from recommender.store import LocalStore

    (LocalStore(challenger).path_of(1) / "item_ids.npy").write_bytes(b"garbage")
    client = await aiohttp_client(
        create_app(
            ServerConfig(
                model_dir=champion, challenger_model_dir=str(challenger), poll_interval=0.05
            )
        )
    )
    for _ in range(600):  # up to 30 s: a ceiling, not a speed
        body = await (await client.get("/experiments")).json()
        refused = body.get("challenger_problem") and "v1" in body["challenger_problem"]
        if refused and body["champion"] is not None:  # the champion serves regardless
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"no reason given: {body}")
    assert body["challenger"] is None
    assert "could be loaded" in body["challenger_problem"]
    assert (await client.get("/recommend", params={"user": "g0u1"})).status == 200


async def test_experiment_writes_with_kafka_away_or_a_deep_body_get_a_clear_answer(
    aiohttp_client, tmp_path
):
    """A start with the broker away is a 503 that changes nothing (its record withdrawn, so it
    never starts later by surprise); a 100,000-deep JSON body is a 400, not a 500."""
    from recommender.broker import free_port
    from recommender.kafka import KafkaSettings

    champion, challenger = tmp_path / "champion", tmp_path / "challenger"
    publish_window(champion, 1, block_events())
    publish_window(challenger, 1, block_events(), factors=2)
    closed = KafkaSettings(f"127.0.0.1:{free_port()}")  # nothing listens there
    config = ServerConfig(
        model_dir=champion,
        challenger_model_dir=str(challenger),
        poll_interval=0.05,
        kafka=closed,
        experiments_topic="experiments",
    )
    client = await aiohttp_client(create_app(config))
    deep = b"[" * 100_000 + b"]" * 100_000
    response = await client.post("/experiments", data=deep)
    assert response.status == 400 and (await response.json())["error"] == "bad_body"
    response = await client.post("/experiments", json={"mode": "interleave"})
    body = await response.json()
    assert response.status == 503 and body["error"] == "kafka_unavailable", body
    assert (await (await client.get("/experiments")).json())["mode"] == "off"
