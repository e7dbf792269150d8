"""Copies of malformed records on a dead-letter topic; a failure here is counted, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from ..events import ParsedBatch
from ..kafka import KafkaSettings
from ..logs import RateLimitedLog
from .config import BuilderStats

__all__ = ["DeadLetters"]

log = logging.getLogger(__name__)


class DeadLetters:
    """Produce each rejected record to ``topic`` with headers ``reason`` and ``source``
    (``topic/partition/offset``).

    A record longer than ``max_bytes`` is copied truncated to it, with header ``truncated``
    giving its original length (a producer refuses records over its ``message.max.bytes``; the
    source offset still finds the whole record). Any produce or delivery failure is counted in
    ``stats.dead_letter_failures`` and logged at most every 10 s: the builder never stops over a
    dead letter.
    """

    def __init__(
        self, kafka: KafkaSettings, topic: str, stats: BuilderStats, *, max_bytes: int
    ) -> None:
        self.topic = topic
        self.stats = stats
        self.max_bytes = max_bytes
        self._producer = kafka.producer(**{"linger.ms": 50})
        self._log = RateLimitedLog(log)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.stats.dead_letter_failures += 1
            self._log.warning("delivery", "a dead letter was not delivered: %s", error)

    def send(self, messages: Sequence[Message], parsed: ParsedBatch) -> None:
        for k, index in enumerate(parsed.rejected.tolist()):
            m = messages[index]
            value = m.value()
            headers: dict[str, Any] = {
                "reason": parsed.reason_of(k),
                "source": f"{m.topic()}/{m.partition()}/{m.offset()}",
            }
            if value is not None and len(value) > self.max_bytes:
                headers["truncated"] = str(len(value))
                value = value[: self.max_bytes]
                self.stats.dead_letters_truncated += 1
            key = m.key()
            if key is not None and len(key) > self.max_bytes:
                key = key[: self.max_bytes]
            try:
                self._producer.produce(
                    self.topic, value=value, key=key, headers=headers, on_delivery=self._delivered
                )
                self.stats.dead_letters += 1
            except (KafkaException, BufferError, ValueError, TypeError) as exc:
                self.stats.dead_letter_failures += 1
                self._log.warning("produce", "could not copy a record to %s: %s", self.topic, exc)
        try:
            self._producer.poll(0)
        except KafkaException as exc:  # pragma: no cover - poll reports through callbacks
            self._log.warning("poll", "dead-letter producer: %s", exc)

    def close(self, timeout: float = 5.0) -> None:
        left = self._producer.flush(timeout)
        if left:
            self.stats.dead_letter_failures += left
            log.warning("%d dead letters were not delivered before shutdown", left)
