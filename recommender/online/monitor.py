"""The monitor: joins the exposures topic with the interactions topic, and publishes live
quality and experiment results for every server replica.

The builder runs it (one per store, under the store's writer lock), in a thread with its own
consumer: ``assign()`` on both topics and on the experiments control topic. Every few seconds
it writes the online status document (``online-status.json``) to the snapshot store: the report
(:meth:`recommender.online.join.OnlineJoin.report`) and a checkpoint. Servers read that
document as they read the builder's status, so every replica shows the same figures, and a
restarted monitor continues from the checkpoint exactly (see :mod:`.join`). The first start reads
both topics from their beginning.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from typing import Any, Final

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from ..events import parse_values
from ..kafka import BrokerHealth, KafkaSettings, TopicMissing, topic_partitions
from ..logs import RateLimitedLog
from ..ratings import RatingScale
from ..store import SnapshotStore
from . import ONLINE_STATUS
from .experiments import ExperimentSpec
from .exposures import RECOMMENDATION_HEADER, decode_exposure, is_recommendation_id
from .join import MAX_HELD, QUIET_SECONDS, OnlineJoin, Source, exposure_watermark

__all__ = ["Monitor"]

log = logging.getLogger(__name__)

_SAMPLE_SECONDS: Final = 10.0  # how often replay positions are remembered
_REPLAY_MARGIN_MS: Final = 60_000


class Monitor:
    """See the module docstring."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        store: SnapshotStore,
        interactions_topic: str,
        exposures_topic: str,
        control_topic: str | None,
        window_ms: int,
        ratings: RatingScale | None,
        health: BrokerHealth,
        every: float = 3.0,
        pause_held: int = MAX_HELD // 4,
    ) -> None:
        self.kafka, self.store, self.health = kafka, store, health
        self.topics: dict[Source, str] = {
            "exposures": exposures_topic,
            "interactions": interactions_topic,
        }
        self.control_topic = control_topic
        self.window_ms = window_ms
        self.ratings = ratings
        self.every = every
        #: Interactions waiting for their exposures past which no more interactions are fetched
        #: (until half of them are joined): see :meth:`_flow`.
        self.pause_held = pause_held
        self.pauses = 0
        self._paused: list[TopicPartition] = []
        self.malformed = 0
        self.join = OnlineJoin(window_ms=window_ms)
        self._next: dict[Source, dict[int, int]] = {"exposures": {}, "interactions": {}}
        self._exposure_ms: dict[int, int] = {}  # per exposure partition, the newest time read
        self._exposure_read: dict[int, float] = {}  # per exposure partition, when it last gave one
        self._asked, self._asked_at = False, -math.inf  # the broker's last word on the ends
        self._samples: deque[tuple[int, dict[Source, dict[int, int]]]] = deque(maxlen=10_000)
        self._stop = threading.Event()
        self._errors = RateLimitedLog(log, interval=30.0)
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    # -- start ---------------------------------------------------------------------------------

    def _resume(self) -> dict[Source, dict[int, int]]:
        document = self.store.read_document(ONLINE_STATUS) or {}
        checkpoint = document.get("checkpoint")
        if not isinstance(checkpoint, dict):
            log.info("monitor: no checkpoint; reading exposures and interactions from the start")
            return {"exposures": {}, "interactions": {}}
        self.join = OnlineJoin.resume(checkpoint, window_ms=self.window_ms)
        replay = OnlineJoin.replay_offsets(checkpoint)
        log.info("monitor: resuming from its checkpoint, replaying from %s", replay)
        return replay

    def _assign(self, consumer: Consumer, start: dict[Source, dict[int, int]]) -> bool:
        assignment = []
        try:
            for source, topic in self.topics.items():
                for p in topic_partitions(consumer, topic, timeout=2.0):
                    offset = start[source].get(p, OFFSET_BEGINNING)
                    assignment.append(TopicPartition(topic, p, offset))
                    self._next[source][p] = max(offset, 0)
        except TopicMissing as exc:
            self._errors.warning("topics", "monitor waiting for its topics: %s", exc)
            return False
        consumer.assign(assignment)
        return True

    def _assign_control(self, consumer: Consumer) -> bool:
        """The experiments topic, once it exists (the first start or stop creates it)."""
        if self.control_topic is None:
            return True
        try:
            partitions = topic_partitions(consumer, self.control_topic, timeout=1.0)
        except TopicMissing:
            return False
        consumer.incremental_assign(
            [TopicPartition(self.control_topic, p, OFFSET_BEGINNING) for p in partitions]
        )
        return True

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        consumer = self.kafka.consumer(
            **{"auto.offset.reset": "earliest"}, **self.health.client_config("monitor")
        )
        try:
            start = self._resume()
            while not self._stop.is_set() and not self._assign(consumer, start):
                self._stop.wait(2.0)
            self._sample()  # where reading starts: the oldest replay point there is
            next_write = next_control = 0.0
            next_sample = time.monotonic() + _SAMPLE_SECONDS
            control = False
            while not self._stop.is_set():
                try:
                    if not control and time.monotonic() >= next_control:
                        control = self._assign_control(consumer)
                        next_control = time.monotonic() + 5.0
                    messages = consumer.consume(5000, timeout=0.2)
                    self._handle(messages)
                    watermark, quiet = self._watermark(consumer)
                    self.join.release(
                        watermark,
                        arrived_before=time.monotonic() - QUIET_SECONDS if quiet else None,
                    )
                    self._flow(consumer)
                    now = time.monotonic()
                    if now >= next_sample:
                        self._sample()
                        next_sample = now + _SAMPLE_SECONDS
                    if now >= next_write:
                        self._write()
                        next_write = now + self.every
                except Exception as exc:  # one bad batch or a store hiccup: count, go on
                    self._errors.warning("batch", "the monitor skipped a batch: %r", exc)
                    self._stop.wait(0.5)
            self._write()
        finally:
            consumer.close()

    def _flow(self, consumer: Consumer) -> None:
        """Fetch no more interactions while too many wait for the exposure stream.

        One consumer reads both topics, and nothing keeps their fetches in step: replaying a
        long interactions topic can run far ahead of the exposures (a restart replays an
        attribution window of both). Interactions are held until the exposures pass their time;
        past ``MAX_HELD`` the oldest would be joined before their answers were read, and a hit
        missed (the 30-minute soak lost 0.47 % of its hits that way). So the interaction
        partitions are paused at ``pause_held`` waiting, and resumed, from where the join
        stands, once half of them are joined. Pausing drops what librdkafka fetched ahead, and
        resuming fetches from the record after the last one handed to us (librdkafka keeps the
        application's position across a pause), so nothing is lost or read twice.
        """
        held = self.join.held
        if not self._paused and held >= self.pause_held:
            topic = self.topics["interactions"]
            self._paused = [tp for tp in consumer.assignment() if tp.topic == topic]
            consumer.pause(self._paused)
            self.pauses += 1
            log.debug("monitor: %d interactions wait for exposures; pausing interactions", held)
        elif self._paused and held <= self.pause_held // 2:
            consumer.resume(self._paused)
            self._paused = []

    def _handle(self, messages: list[Message]) -> None:
        exposures, interactions = self.topics["exposures"], self.topics["interactions"]
        events: list[Message] = []
        for m in messages:
            if m.error() is not None:
                continue
            topic = m.topic()
            if topic == exposures:
                self._exposure(m)
            elif topic == interactions:
                events.append(m)
            elif topic == self.control_topic:
                self._control(m)
        if events:
            self._interactions(events)

    def _exposure(self, message: Message) -> None:
        p, offset = int(message.partition() or 0), int(message.offset() or 0)
        self._next["exposures"][p] = offset + 1
        exposure = decode_exposure(message.value())
        if exposure is None:
            self.malformed += 1
            return
        self._exposure_ms[p] = max(self._exposure_ms.get(p, 0), exposure.timestamp_ms)
        self._exposure_read[p] = time.monotonic()
        self.join.exposure(exposure, p, offset)

    def _control(self, message: Message) -> None:
        try:
            spec = ExperimentSpec.from_dict(json.loads(message.value() or b"null"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            spec = None
        if spec is not None:
            self.join.control(spec)

    def _interactions(self, events: list[Message]) -> None:
        parsed = parse_values([m.value() for m in events], ratings=self.ratings)
        users, items = parsed.users(), parsed.items()
        weights = np.asarray(parsed.weights, dtype=np.float64)
        for k, index in enumerate(parsed.accepted.tolist()):
            message = events[index]
            timestamp = message.timestamp()[1]
            self.join.interaction(
                users[k],
                items[k],
                float(weights[k]),
                int(timestamp if timestamp > 0 else time.time() * 1000),
                int(message.partition() or 0),
                int(message.offset() or 0),
                _named(message),
                arrived=time.monotonic(),
            )
        for message in events:
            self._next["interactions"][int(message.partition() or 0)] = (
                int(message.offset() or 0) + 1
            )

    def _watermark(self, consumer: Consumer) -> tuple[int, bool]:
        """The exposure stream's time and whether it is quiet (see
        :func:`~recommender.online.join.exposure_watermark`); a partition is at its end as far
        as the last fetch said."""
        topic = self.topics["exposures"]
        partitions = []
        for p, nxt in self._next["exposures"].items():
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
            except Exception:
                high = -1
            at_end = 0 <= high <= nxt
            partitions.append(
                (self._exposure_ms.get(p, 0), at_end, self._exposure_read.get(p, -math.inf))
            )
        now = time.monotonic()
        quiet = [at_end and now - last >= QUIET_SECONDS for _, at_end, last in partitions]
        answered = not any(quiet) or self._broker_says_at_end(consumer, now)
        return exposure_watermark(
            partitions, now=now, now_ms=int(time.time() * 1000), answered=answered
        )

    def _broker_says_at_end(self, consumer: Consumer, now: float) -> bool:
        """Whether the broker, asked now (at most once a second), answers that no exposure
        partition has records beyond what was read: only then is a quiet partition an idle
        producer and not a broker that stopped answering (then every fetch just times out)."""
        if now - self._asked_at < 1.0:
            return self._asked
        topic = self.topics["exposures"]
        try:
            self._asked = all(
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=1.0)[1] <= nxt
                for p, nxt in self._next["exposures"].items()
            )
        except Exception:  # no answer: hold
            self._asked = False
        self._asked_at = time.monotonic()
        return self._asked

    # -- checkpoints ---------------------------------------------------------------------------

    def _sample(self) -> None:
        self._samples.append((self.join.stream_ms, self.join.positions(self._next)))

    def _replay_from(self) -> dict[Source, dict[int, int]]:
        """Positions at least one window (and a minute) older than the oldest interaction not
        yet counted (or the exposure stream's time, if older): every exposure it may go to, and
        every like those had, is read again. The interactions may lag the exposures by more
        than the margin (a replay reads the exposures ahead, up to ``pause_held`` waiting)."""
        limit = self.join.front_ms() - self.window_ms - _REPLAY_MARGIN_MS
        chosen = self._samples[0][1] if self._samples else {"exposures": {}, "interactions": {}}
        for stream_ms, positions in self._samples:
            if stream_ms <= limit:
                chosen = positions
        return chosen

    def _write(self) -> None:
        now_ms = int(time.time() * 1000)
        document: dict[str, Any] = {
            "updated_at": time.time(),
            "topics": dict(self.topics),
            "window_ms": self.window_ms,
            "malformed_exposures": self.malformed,
            # times interactions were paused to let the exposures catch up (see _flow)
            "interaction_pauses": self.pauses,
            **self.join.report(now_ms),
            "checkpoint": self.join.checkpoint(
                {s: dict(o) for s, o in self._next.items()}, self._replay_from()
            ),
        }
        try:
            self.store.write_document(ONLINE_STATUS, document)
        except Exception as exc:  # the next write tries again
            self._errors.warning("write", "could not write the online status: %s", exc)


def _named(message: Message) -> str | None:
    """The recommendation id a record's header names, if a valid one."""
    headers: Any = message.headers() or []
    for key, value in headers:
        if key == RECOMMENDATION_HEADER and isinstance(value, bytes):
            named = value.decode("ascii", "replace")
            return named if is_recommendation_id(named) else None
    return None
