"""The monitor's flow control: while too many interactions wait for the exposure stream (a
restart replays an attribution window of both topics, and nothing keeps their fetches in step),
it stops fetching interactions, and resumes from where its join stands. In the 30-minute soak,
without it, the wait queue overflowed and likes were joined before their answers were read
(0.47 % of the hits lost). How far one topic runs ahead depends on the broker's fetch sizes,
which this embedded broker does not let a test set; so here the monitor pauses at nearly every
batch, and the counts must stay exact across every pause and resume."""

from __future__ import annotations

import time

from confluent_kafka import Producer

from recommender.kafka import BrokerHealth, create_topic
from recommender.online import ONLINE_STATUS
from recommender.online.exposures import Exposure, encode_exposure, new_recommendation_id
from recommender.online.monitor import Monitor
from recommender.store import LocalStore

from .conftest import wait_until

ANSWERS = 1500
FILLER = 20  # interactions of other users per answer: the interactions topic runs ahead


def _produce(kafka, exposures: str, interactions: str) -> int:
    start = int(time.time() * 1000) - ANSWERS * 1000 - 700_000  # within the last day
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 20})
    for k in range(ANSWERS):
        at = start + k * 1000
        user = f"u{k % 300}"
        items = tuple(f"item-{k}-{j}-" + "x" * 40 for j in range(40))  # a large record
        shown = Exposure(new_recommendation_id(), at, user, items, "/recommend", 1, "als")
        producer.produce(exposures, encode_exposure(shown), key=user.encode(), timestamp=at)
        producer.produce(interactions, f"{user}:{items[3]}".encode(), key=user.encode(),
                         timestamp=at + 400)  # fmt: skip
        for j in range(FILLER):
            other = f"f{k}-{j}"
            # ten minutes later: each waits for the answers of the next 600 seconds
            producer.produce(interactions, f"{other}:i{j}".encode(), key=other.encode(),
                             timestamp=at + 600_000 + j)  # fmt: skip
        producer.poll(0)
    assert producer.flush(60) == 0
    return ANSWERS * (1 + FILLER)


def test_pausing_the_interactions_for_their_answers_loses_and_repeats_nothing(kafka, tmp_path):
    exposures, interactions = f"x-{time.time_ns()}", f"i-{time.time_ns()}"
    create_topic(kafka, exposures, partitions=1)
    create_topic(kafka, interactions, partitions=1)
    total = _produce(kafka, exposures, interactions)
    store = LocalStore(tmp_path / "store")
    monitor = Monitor(
        kafka,
        store=store,
        interactions_topic=interactions,
        exposures_topic=exposures,
        control_topic=None,
        window_ms=30 * 60_000,
        ratings=None,
        health=BrokerHealth(),
        every=0.5,
        pause_held=10,  # a pause at nearly every batch: resumes must lose and repeat nothing
    )
    monitor.start()
    try:

        def counted() -> dict:
            document = store.read_document(ONLINE_STATUS) or {}
            return document.get("counts") or {}

        wait_until(
            lambda: counted().get("interactions", 0) == total and
            (store.read_document(ONLINE_STATUS) or {}).get("held") == 0,
            timeout=120,
            what="every interaction joined",
        )  # fmt: skip
    finally:
        monitor.stop()
    document = store.read_document(ONLINE_STATUS)
    day = document["live"]["periods"]["24h"]
    assert document["counts"]["joined_early"] == 0
    assert (day["exposures"], day["hits"]) == (ANSWERS, ANSWERS)
    assert document["interaction_pauses"] >= 1  # paused, and resumed while records were unread
