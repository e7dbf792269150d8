"""The learned ranking stage through the real broker and real processes: the builder trains a
ranker after its first publication and puts it in the snapshot with its decision; the server
answers through it (pages are slices of one order, hidden items stay hidden, fresh events
count); ``auto`` leaves a ranker that does not beat the family's order out, and says why."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from recommender.synthetic import TasteModel

from .conftest import builder_command, get_json, produce, server_command, wait_until

TASTES = TasteModel(users=600, items=300, groups=6, in_group=0.9)


def _start(kafka, topic, daemons, tmp_path, http_port, mode: str):
    name = topic(2)
    rng = np.random.default_rng(11)
    first = TASTES.values(*TASTES.sample(12_000, rng))
    produce(kafka, name, first)
    model_dir = tmp_path / "model"
    daemons(
        "builder",
        builder_command(name, model_dir, kafka.bootstrap_servers, "2000", "100000", "-b",
                        "--ranker", mode, "--ranker-interval", "1"),
    )  # fmt: skip
    daemons(
        "server",
        server_command(model_dir, http_port, "--topic", name, "--poll-interval", "0.2",
                       "--bootstrap-servers", kafka.bootstrap_servers),
    )  # fmt: skip
    base = f"http://127.0.0.1:{http_port}"
    wait_until(lambda: get_json(f"{base}/ready")[0] == 200, timeout=90, what="a model")
    # the first publication has no ranker; more events make the next one, which trains it
    produce(kafka, name, TASTES.values(*TASTES.sample(3_000, rng)))

    def ranker_section():
        section = (get_json(f"{base}/model")[1].get("manifest") or {}).get("ranker")
        return section if section and "reason" in section and "trained_at" in section else None

    return name, base, wait_until(ranker_section, timeout=120, what="a trained ranker")


def test_a_ranker_pinned_on_serves_every_page_of_one_order(
    kafka, topic, daemons, tmp_path, http_port
):
    _, base, section = _start(kafka, topic, daemons, tmp_path, http_port, "on")
    assert section["serves"] is True, section
    assert section["schema"]["names"][:2] == ["candidates.score", "candidates.rank"]
    assert section["importances"] and section["against_first_stage"]["users"] >= 30
    user = "u7"
    status, whole = get_json(f"{base}/recommend?user={user}&n=20")
    assert status == 200 and len(whole["items"]) == 20, whole
    scores = [i["score"] for i in whole["items"]]
    assert scores == sorted(scores, reverse=True)
    status, page = get_json(f"{base}/recommend?user={user}&n=10&offset=10")
    assert status == 200
    assert [i["item"] for i in page["items"]] == [i["item"] for i in whole["items"][10:]]
    _, seen = get_json(f"{base}/users/{user}/items")
    assert not {i["item"] for i in seen["window"]} & {i["item"] for i in whole["items"]}
    # /because says which features lifted the top item
    top = whole["items"][0]["item"]
    status, explained = get_json(f"{base}/because?user={user}&item={top}")
    assert status == 200, explained
    lifted = explained["ranker"]["features"]
    names = {f["feature"] for f in lifted}
    assert lifted and names <= set(section["schema"]["names"]), explained
    assert abs(explained["ranker"]["score"] - whole["items"][0]["score"]) < 1e-3, explained
    # a newcomer and an anonymous session are ranked too
    status, anonymous = get_json(f"{base}/recommend?items=i1,i2&n=5")
    assert status == 200 and len(anonymous["items"]) == 5
    status, newcomer = get_json(f"{base}/recommend?user=nobody&n=5")
    assert status == 200 and newcomer["items"], newcomer


def test_auto_keeps_a_ranker_that_does_not_beat_the_family_out_and_says_why(
    kafka, topic, daemons, tmp_path, http_port
):
    _, base, section = _start(kafka, topic, daemons, tmp_path, http_port, "auto")
    # planted tastes carry nothing beyond ids: the family's order is as good
    # (measured: 0.29 against 0.32, interval [-0.047, -0.005] to [-0.049, -0.011], 166 users)
    assert section["serves"] is False and "does not beat" in section["reason"], section
    status, body = get_json(f"{base}/recommend?user=u7&n=10")
    assert status == 200 and len(body["items"]) == 10
    # every reader says so: /status (and the page from it), recommender status
    ranker = get_json(f"{base}/status")[1]["model"]["ranker"]
    assert ranker["serves"] is section["serves"] and ranker["reason"] == section["reason"]
    assert ranker["importances"], ranker
    done = subprocess.run(
        [sys.executable, "-m", "recommender", "status", "--model-dir", str(tmp_path / "model")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("Ranker"))
    assert ("does not serve" in line) is not section["serves"] and "features by gain" in line


def _settling_users(rng, *, quality: np.ndarray, users: int, early: int, late: int) -> list[bytes]:
    """Each user's ``early`` events on items at random, then (``late`` > 0) ``late`` on items of
    high ``quality``, in that order for every user: a time-of-life effect (what people settle on
    after they explore) that no id model learns from the exploring events."""
    good = np.flatnonzero(quality > 0)
    values = []
    if early:
        for u in range(users):
            values += [f"u{u}:i{k}".encode() for k in rng.choice(quality.size, early, False)]
    for _ in range(late):
        values += [f"u{u}:i{rng.choice(good)}".encode() for u in range(users)]
    return values


def test_an_attribute_that_carries_the_signal_is_learnt_from_the_items_topic_and_served(
    kafka, topic, daemons, tmp_path, http_port
):
    """Item attributes reach the ranker through the items topic; where one carries the signal
    (the newest likes are of high-quality items, which the exploring events before them do not
    show), ``auto`` serves the ranker, beyond the noise, and the server ranks by it."""
    name, items = topic(2), topic(1)
    rng = np.random.default_rng(3)
    n_items, n_users = 300, 600
    quality = (np.arange(n_items) % 10 == 0).astype(float)  # 30 items of high quality
    records = [
        {"id": f"i{k}", "title": f"Item {k}", "categories": [f"shelf {k % 7}"],
         "labels": {"brand": f"b{k % 4}"},
         "attributes": {"quality": quality[k], "price": float(rng.uniform(1, 50))}}
        for k in range(n_items)
    ]  # fmt: skip
    records[5]["attributes"]["price"] = "not a number"  # counted and left out; the rest applies
    produce(kafka, items, [json.dumps(r).encode() for r in records], keyed=False)
    produce(kafka, name, _settling_users(rng, quality=quality, users=n_users, early=20, late=4))
    model_dir = tmp_path / "model"
    daemons(
        "builder",
        builder_command(name, model_dir, kafka.bootstrap_servers, "500", "100000", "-b",
                        "--ranker", "auto", "--ranker-interval", "1", "--items-topic", items),
    )  # fmt: skip
    daemons(
        "server",
        server_command(model_dir, http_port, "--topic", name, "--items-topic", items,
                       "--bootstrap-servers", kafka.bootstrap_servers, "--poll-interval", "0.2"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{http_port}"
    wait_until(lambda: get_json(f"{base}/ready")[0] == 200, timeout=90, what="a model")
    produce(kafka, name, _settling_users(rng, quality=quality, users=n_users, early=0, late=1))

    def ranker_section():
        section = (get_json(f"{base}/model")[1].get("manifest") or {}).get("ranker")
        return section if section and "trained_at" in section and "schema" in section else None

    section = wait_until(ranker_section, timeout=120, what="a ranker that serves")
    assert section["serves"] is True, section
    assert section["against_first_stage"]["interval"][0] > 0, section
    assert section["catalogue"] == {
        "items": n_items,
        "ignored_attributes": 1,
        "rejected_records": 0,
    }
    names = section["schema"]["names"]
    assert {"attr.quality", "attr.price", "match.category", "match.labels"} <= set(names), names
    importances = section["importances"]
    assert max(importances, key=importances.get) == "attr.quality", importances
    ranker = get_json(f"{base}/status")[1]["model"]["ranker"]  # the page shows it
    assert ranker["serves"] is True and next(iter(ranker["importances"])) == "attr.quality"
    # the server ranks by it: a user's answer is mostly high-quality items
    status, body = get_json(f"{base}/recommend?user=u7&n=10")
    assert status == 200 and len(body["items"]) == 10, body
    good = {f"i{k}" for k in np.flatnonzero(quality > 0)}
    assert sum(i["item"] in good for i in body["items"]) >= 8, body
    top = body["items"][0]["item"]
    status, explained = get_json(f"{base}/because?user=u7&item={top}")
    assert status == 200, explained
    lifted = {f["feature"]: f for f in explained["ranker"]["features"]}
    assert lifted["attr.quality"]["value"] == 1.0 and lifted["attr.quality"]["contribution"] > 0


def test_the_builders_catalogue_reader_follows_the_items_topic_and_survives_its_absence(
    kafka, topic
):
    from recommender.builder.catalogue import ItemsTopicReader

    items = topic(2)

    def record(k: int, price: float) -> bytes:
        return json.dumps({"id": f"i{k}", "attributes": {"price": price}}).encode()

    produce(kafka, items, [record(k, 10.0 + k) for k in range(3)], keyed=False)
    reader = ItemsTopicReader(kafka, items, budget=20.0)
    try:
        catalog = reader.refresh()
        assert len(catalog) == 3 and catalog.record("i2").attributes == {"price": 12.0}
        # on from where it stopped: an update and a new item, nothing read twice
        produce(kafka, items, [record(2, 99.0), record(7, 1.0)], keyed=False)
        catalog = reader.refresh()
        assert len(catalog) == 4 and catalog.record("i2").attributes == {"price": 99.0}
        assert catalog.applied == 5 and reader.failures == 0
    finally:
        reader.close()
    missing = ItemsTopicReader(kafka, "no-such-topic-here", budget=2.0)
    try:
        assert len(missing.refresh()) == 0 and missing.failures == 1  # logged, never raised
    finally:
        missing.close()
