"""The builder's copy of the item catalogue, for the ranker's item features (categories and
attributes; see :mod:`recommender.features.catalogue`).

Read in the retrain thread when a ranker is trained or published: from the items topic's
beginning the first time, then on from where it stopped, up to the end the broker reports (at
most ``budget`` seconds a call; the rest waits for the next). A topic that does not exist yet or
a broker that does not answer leaves the catalogue as it was, logged and counted: the ranker then
learns without it, never fails for it. Records are parsed and bounded as the server's are (one
parser, :class:`~recommender.items.Catalog`).
"""

from __future__ import annotations

import logging
import time
from typing import Final

from confluent_kafka import Consumer, TopicPartition

from ..errors import one_line
from ..items import Catalog
from ..kafka import KafkaSettings, TopicMissing, topic_partitions
from ..logs import RateLimitedLog

__all__ = ["ItemsTopicReader"]

log = logging.getLogger(__name__)

#: Bytes of records the builder keeps (the server's catalogue bound is its own flag).
MAX_CATALOGUE_BYTES: Final = 512 << 20


class ItemsTopicReader:
    """Follows ``topic`` into :attr:`catalog` a call at a time (see the module docstring)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        budget: float = 30.0,
        max_bytes: int = MAX_CATALOGUE_BYTES,
    ) -> None:
        self.kafka, self.topic, self.budget = kafka, topic, budget
        self.catalog = Catalog(max_bytes=max_bytes)
        #: Calls that could not read the topic (absent, or the broker did not answer).
        self.failures = 0
        self._consumer: Consumer | None = None
        self._next: dict[int, int] = {}  # partition -> the next offset to read
        self._problems = RateLimitedLog(log, interval=600.0)

    def refresh(self) -> Catalog:
        """The catalogue, brought up to the topic's end (or as far as the budget allows)."""
        try:
            self._read()
        except Exception as exc:  # the ranker learns without the catalogue's news
            self.failures += 1
            self._problems.warning(
                "read", "could not read the items topic %r: %s", self.topic, one_line(exc)
            )
        return self.catalog

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _read(self) -> None:
        consumer = self._consumer
        if consumer is None:
            consumer = self.kafka.consumer(**{"auto.offset.reset": "earliest"})
            try:
                partitions = topic_partitions(consumer, self.topic, timeout=5.0)
            except TopicMissing:
                consumer.close()
                raise
            starts = {}
            for p in partitions:
                low, _ = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5.0)
                starts[p] = max(low, 0)
            consumer.assign([TopicPartition(self.topic, p, o) for p, o in starts.items()])
            self._consumer, self._next = consumer, starts
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5.0)[1]
            for p in self._next
        }
        deadline = time.monotonic() + self.budget
        applied = 0
        while any(self._next[p] < end for p, end in ends.items()):
            if time.monotonic() >= deadline:
                log.info("items topic: read for %.0f s, the rest at the next ranker", self.budget)
                break
            messages = consumer.consume(5000, timeout=0.5)
            if not messages:  # past the last record (a compacted log's end may be a marker)
                for tp in consumer.position([TopicPartition(self.topic, p) for p in self._next]):
                    if tp.offset >= 0:
                        self._next[tp.partition] = max(self._next[tp.partition], tp.offset)
            good = [m for m in messages if m.error() is None]
            for m in good:
                partition, offset = m.partition(), m.offset()
                if partition is not None and offset is not None:
                    self._next[partition] = max(self._next.get(partition, 0), offset + 1)
            if good:
                applied += self.catalog.update([m.value() for m in good], [m.key() for m in good])
        if applied:
            log.info(
                "items topic %r: %d records applied, %d items known",
                self.topic,
                applied,
                len(self.catalog),
            )
