"""Logging answers while Kafka is away: never a wait, never an error to the caller, and every
record that did not reach Kafka counted by reason (a real librdkafka producer aimed at a port
nobody listens on)."""

from __future__ import annotations

import time

from recommender.broker import free_port
from recommender.items import Catalog
from recommender.kafka import BrokerHealth, KafkaSettings
from recommender.server.exposures import ExposureLog
from recommender.server.metrics import ServerMetrics
from recommender.serving.fresh import FreshEvents


def _dropped(metrics: ServerMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "recommender_exposures_dropped_total", {"reason": reason}
    )
    return value or 0.0


def test_answers_logged_while_kafka_is_away_are_dropped_and_counted_never_waited_for():
    metrics = ServerMetrics(lambda: None, FreshEvents(), Catalog())
    log = ExposureLog(
        KafkaSettings(f"127.0.0.1:{free_port()}"),
        "recommendations",
        metrics,
        BrokerHealth(),
        queue_messages=50,
        delivery_timeout_ms=1000,
    )
    try:
        started = time.perf_counter()
        ids = [
            log.record(route="/recommend", items=["i1", "i2"], model_version=1, family="als",
                       user=f"u{k}")
            for k in range(80)
        ]  # fmt: skip
        assert time.perf_counter() - started < 1.0  # the request path never waits for Kafka
        assert len(set(ids)) == 80  # every answer still has its id
        assert _dropped(metrics, "queue_full") == 30  # past the bounded queue
        deadline = time.monotonic() + 20
        while _dropped(metrics, "undelivered") < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _dropped(metrics, "undelivered") == 50  # queued, then timed out: each counted
    finally:
        log.close()
