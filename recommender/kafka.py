"""Kafka client configuration and factories (confluent-kafka / librdkafka).

Everything that talks to Kafka gets its clients here, so SASL/SSL settings given once
(``-X key=value`` or a ``.properties`` file) reach every client.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from .errors import ConfigError, RecommenderError

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "KafkaSettings",
    "TopicMissing",
    "create_topic",
    "load_properties",
    "parse_overrides",
    "topic_partitions",
]

DEFAULT_BOOTSTRAP: Final = "localhost:9092"


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
        """A client configuration: our defaults, overridden by the user's properties."""
        return {"bootstrap.servers": self.bootstrap_servers, **defaults, **self.extra}

    def consumer(self, **defaults: Any) -> Consumer:
        """A consumer for ``assign()`` with explicit offsets: no group join, no commits.

        Group membership is not needed for a single logical reader and costs seconds per start
        on some brokers; positions live in our snapshots instead of committed offsets.
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
