"""``POST /interactions``: validate events exactly as the builder does and produce them to Kafka.

Produce calls never block the event loop; a poller thread serves librdkafka's delivery callbacks
and resolves one future per event, so the handler answers only once Kafka has the events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message

from ..events import format_event, parse_values
from ..kafka import BrokerHealth, KafkaSettings
from ..online.exposures import RECOMMENDATION_HEADER, is_recommendation_id
from ..ratings import RatingScale

__all__ = ["MAX_BODY_BYTES", "MAX_EVENTS_PER_REQUEST", "Ingest", "IngestResult", "decode_body"]

log = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 10_000
#: Largest request body: 10,000 events of the longest kind fit in text; bigger is a 413.
MAX_BODY_BYTES = 2 << 20


#: What a JSON event's reject reason means, for the client that sent it.
REASONS = {
    "not_an_object": "each event must be a JSON object",
    "bad_recommendation_id": "recommendation_id must be an id this server gave",
    "missing_field": "user and item must be strings",
    "bad_weight": "weight (or rating) must be a number",
    "colon_in_id": "user and item ids cannot contain ':' (events travel as user:item[:weight])",
    "not_utf8": "ids must be valid Unicode text",
    # The wire format's reasons (recommender.events), for text bodies.
    "empty": "an empty line",
    "too_long": "the event is longer than the limit",
    "extra_field": "more than user:item:weight (a ':' in an id?)",
    "control_char": "ids cannot contain control characters",
    "empty_id": "user and item ids cannot be empty",
    "id_too_long": "an id is longer than the limit",
    "bad_rating": "the rating is outside the declared scale",
}


class BodyError(ValueError):
    """The request body is not one of the accepted shapes."""


def _json_event(event: object) -> bytes | str:
    """Wire bytes for a JSON event, or the reason it is malformed."""
    if not isinstance(event, dict):
        return "not_an_object"
    named = event.get("recommendation_id")
    if named is not None and not is_recommendation_id(named):
        return "bad_recommendation_id"
    user, item = event.get("user"), event.get("item")
    weight = event.get("weight", event.get("rating"))
    if not isinstance(user, str) or not isinstance(item, str):
        return "missing_field"
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int | float)):
        return "bad_weight"
    if ":" in user or ":" in item:
        return "colon_in_id"  # the wire format is user:item[:weight]: a colon cannot travel
    try:
        return format_event(user, item, None if weight is None else float(weight))
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") decodes from JSON, encodes nowhere
        return "not_utf8"


def recommendation_ids(content_type: str, body: bytes) -> list[str | None]:
    """The ``recommendation_id`` of each JSON event of a body (aligned with
    :func:`decode_body`'s entries; None where an event names none, and for text bodies)."""
    if content_type != "application/json":
        return []
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return []
    if isinstance(data, dict) and "events" in data:
        data = data["events"]
    events = data if isinstance(data, list) else [data]
    return [
        e["recommendation_id"]
        if isinstance(e, dict) and is_recommendation_id(e.get("recommendation_id"))
        else None
        for e in events
    ]


def decode_body(content_type: str, body: bytes) -> list[bytes | str]:
    """Events of a request body: JSON (an event, a list, or {"events": [...]}) or text lines.

    Each entry is the event's wire bytes, or a reject reason for a JSON event of the wrong shape.
    A JSON event may name the answer it responds to (``recommendation_id``; see
    :func:`recommendation_ids`): it then travels as a Kafka record header.
    """
    if content_type == "application/json":
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BodyError(f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise BodyError("the body is JSON nested too deeply to be events") from None
        if isinstance(data, dict) and "events" in data:
            data = data["events"]
        events = data if isinstance(data, list) else [data]
        return [_json_event(e) for e in events]
    if content_type in ("text/plain", "application/octet-stream", ""):
        return [line for line in body.split(b"\n") if line.strip(b"\r")]
    raise BodyError(
        f"unsupported content type {content_type!r}: use application/json or text/plain"
    )


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    rejected: list[dict[str, Any]]


class Ingest:
    """A Kafka producer for the interactions topic, usable from the event loop."""

    def __init__(self, kafka: KafkaSettings, topic: str, health: BrokerHealth) -> None:
        self.topic = topic
        self.producer = kafka.producer(
            **{"linger.ms": 2, "acks": "all"}, **health.client_config("server ingest")
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="ingest-poller", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def close(self) -> None:
        self._stop.set()
        self._poller.join(2)
        left = self.producer.flush(5)
        if left:
            log.warning("%d ingested events were not delivered before shutdown", left)

    async def submit(
        self,
        entries: list[bytes | str],
        *,
        ratings: RatingScale | None = None,
        timeout: float = 10.0,
        recommendation_ids: Sequence[str | None] = (),
    ) -> IngestResult:
        """Validate ``entries`` (see :func:`decode_body`; weights as ratings on ``ratings`` if
        the serving model declares a scale), produce the valid ones, await Kafka."""
        rejected: list[dict[str, Any]] = []
        wire: list[bytes] = []
        positions: list[int] = []
        for k, entry in enumerate(entries):
            if isinstance(entry, str):
                rejected.append({"index": k, "reason": entry, "message": REASONS.get(entry, "")})
            else:
                wire.append(entry)
                positions.append(k)
        parsed = parse_values(wire, ratings=ratings)
        for j, index in enumerate(parsed.rejected.tolist()):
            reason = parsed.reason_of(j)
            rejected.append(
                {"index": positions[index], "reason": reason, "message": REASONS.get(reason, "")}
            )
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []

        def delivered(
            future: asyncio.Future[None],
        ) -> Callable[[KafkaError | None, Message], None]:
            def callback(error: KafkaError | None, message: Message) -> None:
                def settle() -> None:
                    if future.done():
                        return
                    if error is None:
                        future.set_result(None)
                    else:
                        future.set_exception(RuntimeError(str(error)))

                loop.call_soon_threadsafe(settle)

            return callback

        users = parsed.users()
        for k, index in enumerate(parsed.accepted.tolist()):
            future: asyncio.Future[None] = loop.create_future()
            position = positions[index]
            named = recommendation_ids[position] if position < len(recommendation_ids) else None
            self.producer.produce(
                self.topic,
                value=wire[index],
                key=users[k].encode(),
                on_delivery=delivered(future),
                headers=None if named is None else [(RECOMMENDATION_HEADER, named.encode())],
            )
            futures.append(future)
        if futures:
            await asyncio.wait_for(asyncio.gather(*futures), timeout)
        rejected.sort(key=lambda r: r["index"])
        return IngestResult(accepted=len(futures), rejected=rejected)
