"""Logging every answer as an exposure on Kafka, without the request path ever waiting.

``record`` builds the record and hands it to librdkafka's queue (bounded by
``queue.buffering.max.messages``); a poller thread serves delivery reports. Records are batched
(``linger.ms`` 50). While Kafka is away the queue fills; what does not fit, and what is not
delivered within ``message.timeout.ms`` (30 s), is dropped and counted by reason in
``/metrics`` (``recommender_exposures_dropped_total``): an answer is never delayed or failed
for its log line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import cast

from aiohttp import web
from confluent_kafka import KafkaError, KafkaException, Message

from ..kafka import BrokerHealth, KafkaSettings
from ..logs import RateLimitedLog
from ..online.exposures import Arm, Exposure, encode_exposure, new_recommendation_id, shown
from .metrics import ServerMetrics
from .state import EXPOSURES

__all__ = ["ExposureLog", "exposures_of"]

log = logging.getLogger(__name__)


class ExposureLog:
    """Gives every answer an id and, when a topic is set, logs it there.

    Parameters
    ----------
    kafka : KafkaSettings or None
        None (or ``topic`` None): ids only, nothing logged.
    """

    def __init__(
        self,
        kafka: KafkaSettings | None,
        topic: str | None,
        metrics: ServerMetrics,
        health: BrokerHealth,
        *,
        queue_messages: int = 100_000,
        delivery_timeout_ms: int = 30_000,
    ) -> None:
        self.topic = topic if kafka is not None else None
        self.metrics = metrics
        self._errors = RateLimitedLog(log, interval=30.0)
        self._producer = None
        self._stop = threading.Event()
        if self.topic is not None and kafka is not None:
            self._producer = kafka.producer(
                **{
                    "linger.ms": 50,
                    # A retried batch whose first answer was lost is written again without
                    # idempotence (a soak's topic held 9,399 duplicated ids); librdkafka refuses
                    # idempotence with acks=1. The monitor counts an id once all the same.
                    "enable.idempotence": True,
                    "acks": "all",
                    "queue.buffering.max.messages": queue_messages,
                    "message.timeout.ms": delivery_timeout_ms,
                    # A delivery report (a Python callback, under the GIL the event loop needs)
                    # only for a record that failed: those are the ones counted.
                    "delivery.report.only.error": True,
                },
                **health.client_config("server exposures"),
            )
            self._poller = threading.Thread(target=self._poll, name="exposures", daemon=True)
            self._poller.start()

    @property
    def enabled(self) -> bool:
        return self._producer is not None

    def _poll(self) -> None:
        assert self._producer is not None
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.metrics.exposures_dropped.labels("undelivered").inc()
            self._errors.warning("delivery", "an exposure was not logged: %s", error)

    def record(
        self,
        *,
        route: str,
        items: Sequence[str],
        model_version: int,
        family: str,
        user: str | None = None,
        session: Sequence[str] = (),
        arm: Arm | None = None,
        credit: Sequence[Arm] | None = None,
        experiment: str | None = None,
        challenger_version: int | None = None,
        recommendation_id: str | None = None,
    ) -> str:
        """The answer's ``recommendation_id``; its exposure queued for Kafka (never blocks)."""
        rec_id = recommendation_id or new_recommendation_id()
        if self._producer is None or self.topic is None or not items:
            return rec_id  # nothing shown: nothing to attribute
        exposure = Exposure(
            id=rec_id,
            timestamp_ms=int(time.time() * 1000),
            user=user,
            items=shown(items),
            route=route,
            model_version=model_version,
            family=family,
            arm=arm,
            credit=None if credit is None else tuple(credit[: len(items)]),
            experiment=experiment,
            challenger_version=challenger_version,
            session=shown(session),
        )
        try:
            self._producer.produce(
                self.topic,
                value=encode_exposure(exposure),
                key=(user or rec_id).encode("utf-8", "surrogatepass"),
                on_delivery=self._delivered,
            )
        except BufferError:
            self.metrics.exposures_dropped.labels("queue_full").inc()
            self._errors.warning("full", "exposures dropped: Kafka's queue is full (broker away?)")
            return rec_id
        except (KafkaException, ValueError) as exc:
            self.metrics.exposures_dropped.labels("error").inc()
            self._errors.warning("error", "an exposure was not logged: %s", exc)
            return rec_id
        self.metrics.exposures_logged.inc()
        return rec_id

    def close(self) -> None:
        if self._producer is None:
            return
        self._stop.set()
        self._poller.join(2)
        left = self._producer.flush(3)
        if left:
            self.metrics.exposures_dropped.labels("shutdown").inc(left)
            log.warning("%d exposures were not logged before shutdown", left)


def exposures_of(app: web.Application) -> ExposureLog:
    return cast(ExposureLog, app[EXPOSURES])
