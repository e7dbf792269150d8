"""Publish events to Kafka at a chosen rate, with a progress bar (demo producers, benchmarks)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence

from confluent_kafka import KafkaException, Producer
from tqdm import tqdm

__all__ = ["produce_values"]

log = logging.getLogger(__name__)


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


def produce_values(
    producer: Producer,
    topic: str,
    values: Sequence[bytes],
    *,
    keys: Sequence[bytes] | None = None,
    rate: float | None = None,
    progress: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
    chunk: int = 1000,
) -> int:
    """Produce ``values`` (keyed by ``keys``) at ``rate`` events/s (None: as fast as possible).

    Returns how many were handed to the producer; flushes before returning.
    """
    sent = 0
    started = time.monotonic()
    step = max(1, min(chunk, int(rate / 20) if rate else chunk))
    with tqdm(
        total=len(values), unit="ev", disable=not progress, desc=f"-> {topic}", smoothing=0.1
    ) as bar:
        for lo, hi in _chunks(len(values), step):
            if should_stop():
                break
            for k in range(lo, hi):
                while True:
                    try:
                        producer.produce(topic, value=values[k], key=keys[k] if keys else None)
                        break
                    except BufferError:  # local queue full: let it drain
                        producer.poll(0.05)
                    except KafkaException as exc:
                        log.error("produce failed: %s", exc)
                        raise
            producer.poll(0)
            sent = hi
            bar.update(hi - lo)
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    producer.flush(2 if should_stop() else 30)
    return sent
