"""Kafka client configuration and factories (confluent-kafka / librdkafka).

Everything that talks to Kafka gets its clients here, so SASL/SSL settings given once
(``-X key=value`` or a ``.properties`` file) reach every client.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from .errors import ConfigError, RecommenderError

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "BrokerHealth",
    "KafkaSettings",
    "TopicMissing",
    "cached_high_watermarks",
    "create_topic",
    "load_properties",
    "message_arrays",
    "parse_overrides",
    "read_record",
    "topic_id",
    "topic_partitions",
]

DEFAULT_BOOTSTRAP: Final = "localhost:9092"

log = logging.getLogger(__name__)


class _EveryFewSeconds(logging.Filter):
    """Let one record per (level, facility) through every ``interval`` seconds; the next one
    that passes says how many were held back. librdkafka retries a lost broker every few hundred
    milliseconds and logs each attempt: tens of identical lines a second."""

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[int, str], float] = {}
        self._held: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, str(record.msg).split(" ", 1)[0])
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} (+{held} like it in the last {self.interval:.0f} s)"
        return True


#: Where librdkafka's own log lines go (instead of raw stderr), rate-limited.
LIBRDKAFKA_LOG = logging.getLogger("recommender.librdkafka")
LIBRDKAFKA_LOG.addFilter(_EveryFewSeconds())

_UNREACHABLE: Final = frozenset(
    {
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TRANSPORT,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
    }
)


class BrokerHealth:
    """Whether the brokers are reachable, from the error and statistics callbacks of this
    process's Kafka clients: one "unreachable since ..." line when the connection is lost, one
    line when it is back, and numbers for metrics in between.
    """

    def __init__(self) -> None:
        self._down_since: dict[str, float] = {}
        self._lock = threading.Lock()
        self.errors = 0

    @property
    def down_since(self) -> float | None:
        """Wall-clock time since when some client cannot reach a broker (None: all fine)."""
        with self._lock:
            return min(self._down_since.values(), default=None)

    def unreachable_seconds(self) -> float:
        since = self.down_since
        return 0.0 if since is None else time.time() - since

    def on_error(self, client: str, error: KafkaError) -> None:
        self.errors += 1
        if error.code() not in _UNREACHABLE:
            LIBRDKAFKA_LOG.warning("%s: %s", client, error.str())
            return
        with self._lock:
            if client in self._down_since:
                return
            self._down_since[client] = now = time.time()
        log.error(
            "%s: Kafka broker unreachable since %s (%s); retrying in the background",
            client,
            time.strftime("%H:%M:%S", time.localtime(now)),
            error.str(),
        )

    def on_stats(self, client: str, stats_json: str) -> None:
        try:
            brokers = json.loads(stats_json).get("brokers", {})
        except ValueError:
            return
        if not any(b.get("state") == "UP" for b in brokers.values()):
            return
        with self._lock:
            since = self._down_since.pop(client, None)
        if since is not None:
            log.warning(
                "%s: Kafka broker reachable again after %.0f s", client, time.time() - since
            )

    def client_config(self, client: str) -> dict[str, Any]:
        """librdkafka settings that report to this object under the name ``client``."""
        return {
            "error_cb": lambda error: self.on_error(client, error),
            "stats_cb": lambda stats: self.on_stats(client, stats),
            "statistics.interval.ms": 1000,
        }


class TopicMissing(RecommenderError):
    """The topic does not exist (or the broker could not be reached to tell)."""


def load_properties(path: Path) -> dict[str, str]:
    """Read a Java-style ``.properties`` file (``key=value`` lines, ``#`` comments)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read Kafka config file {path}: {exc}") from exc
    config = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected key=value, got {line!r}")
        config[key.strip()] = value.strip()
    return config


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """Turn ``["key=value", ...]`` (from repeated ``-X``) into a dict."""
    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-X expects key=value, got {pair!r}")
        config[key.strip()] = value.strip()
    return config


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where the brokers are and any extra librdkafka properties."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_options(
        cls,
        bootstrap_servers: str | None,
        overrides: Iterable[str] = (),
        config_file: Path | None = None,
    ) -> KafkaSettings:
        """Settings from CLI options: file first, then ``-X`` pairs, which win."""
        extra = load_properties(config_file) if config_file else {}
        extra.update(parse_overrides(overrides))
        servers = (
            bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP
        )
        return cls(servers, extra)

    def config(self, **defaults: Any) -> dict[str, Any]:
        """A client configuration: our defaults, overridden by the user's properties.

        librdkafka's log lines go through :data:`LIBRDKAFKA_LOG` (rate-limited), not stderr.
        """
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "logger": LIBRDKAFKA_LOG,
            **defaults,
            **self.extra,
        }

    def consumer(self, **defaults: Any) -> Consumer:
        """A consumer for ``assign()`` with explicit offsets: no group join, no commits.

        Group membership is not needed for a single logical reader and costs seconds per start
        on some brokers; positions live in our snapshots instead of committed offsets. Pass
        ``**health.client_config(name)`` to track reachability (see :class:`BrokerHealth`).
        """
        base = {
            "group.id": "recommender-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            "queued.max.messages.kbytes": 65536,
            **defaults,
        }
        return Consumer(self.config(**base))

    def producer(self, **defaults: Any) -> Producer:
        base = {"linger.ms": 5, "batch.num.messages": 10000, **defaults}
        return Producer(self.config(**base))

    def admin(self) -> AdminClient:
        return AdminClient(self.config())


def topic_partitions(
    client: Consumer | AdminClient, topic: str, *, timeout: float = 10.0
) -> list[int]:
    """The partition ids of ``topic``.

    Raises
    ------
    TopicMissing
        The broker did not answer in time or the topic does not exist.
    """
    try:
        metadata = client.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise TopicMissing(
            f"could not read metadata of topic {topic!r} within {timeout:.0f}s ({exc}); "
            "is the broker reachable? check --bootstrap-servers"
        ) from exc
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        reason = info.error if info is not None and info.error is not None else "no partitions"
        raise TopicMissing(
            f"topic {topic!r} is not available ({reason}): check its name, or create it first "
            "(kafka-topics.sh --create, or by producing to it where auto-creation is on)"
        )
    return sorted(info.partitions)


def create_topic(
    settings: KafkaSettings, topic: str, *, partitions: int = 4, timeout: float = 15.0
) -> None:
    """Create ``topic`` unless it exists."""
    admin = settings.admin()
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout,
    )
    try:
        futures[topic].result(timeout=timeout)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
            raise TopicMissing(f"could not create topic {topic!r}: {exc}") from exc


def read_record(
    settings: KafkaSettings, topic: str, partition: int, offset: int, *, timeout: float = 5.0
) -> tuple[int, bytes | None] | None:
    """The (timestamp, value) of the record at ``offset``, or None if there is none there (the
    log is shorter, or the broker did not answer within ``timeout``)."""
    from confluent_kafka import TopicPartition

    consumer = settings.consumer(**{"fetch.wait.max.ms": 10, "auto.offset.reset": "error"})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in consumer.consume(1, timeout=0.2):
                if message.error() is not None:
                    return None  # out of range, or the partition is gone
                if message.offset() == offset:
                    return message.timestamp()[1], message.value()
                return None
        return None
    finally:
        consumer.close()


_NO_TOPIC_ID: Final = "AAAAAAAAAAAAAAAAAAAAAA"  # the zero UUID: a broker without topic ids


def topic_id(admin: AdminClient, topic: str, *, timeout: float = 2.0) -> str | None:
    """The topic's id (KIP-516: it changes when a topic is deleted and created again, or when a
    broker that keeps topics in memory restarts), or None if the broker does not say."""
    from confluent_kafka import TopicCollection

    try:
        future = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)[topic]
        found = str(future.result(timeout=timeout + 1.0).topic_id)
    except Exception:  # unsupported, not authorised, unreachable: no identity to compare
        return None
    return None if not found or found == _NO_TOPIC_ID or found == "None" else found


def message_arrays(
    messages: list[Any],
) -> tuple[list[bytes | None], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Values, partitions, offsets and timestamps (ms) of consumed messages, as arrays."""
    n = len(messages)
    values = [m.value() for m in messages]
    partitions = np.fromiter((m.partition() for m in messages), np.int64, n)
    offsets = np.fromiter((m.offset() for m in messages), np.int64, n)
    stamps = np.fromiter((m.timestamp()[1] for m in messages), np.int64, n)
    return values, partitions, offsets, stamps


def cached_high_watermarks(consumer: Consumer, topic: str) -> dict[int, int]:
    """The high watermark of each assigned partition of ``topic`` as the last fetch response
    reported it (partitions not fetched yet are left out: nothing to compare)."""
    highs: dict[int, int] = {}
    for tp in consumer.assignment():
        if tp.topic != topic:
            continue
        try:
            highs[tp.partition] = consumer.get_watermark_offsets(tp, cached=True)[1]
        except KafkaException:
            continue
    return highs
