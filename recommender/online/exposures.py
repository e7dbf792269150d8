"""Exposures: what the server showed, to whom, from which model and arm, under which id.

Every answer the server gives gets a ``recommendation_id`` (12 URL-safe characters, 72 random
bits) and is logged as one exposure record on a Kafka topic (``--exposures-topic``). Later
interactions are attributed to exposures (:mod:`.attribution`). Records are JSON, bounded in
every field, and validated on the way back in: a malformed record is counted and skipped.

Pure: no Kafka (the server's :mod:`recommender.server.exposures` produces them).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "ARMS",
    "MAX_EXPOSURE_BYTES",
    "MAX_SHOWN",
    "RECOMMENDATION_HEADER",
    "Arm",
    "Exposure",
    "decode_exposure",
    "encode_exposure",
    "is_recommendation_id",
    "new_recommendation_id",
]

Arm = Literal["champion", "challenger"]
ARMS: Final[tuple[Arm, ...]] = ("champion", "challenger")
#: Most items one exposure records (answers are at most --max-n; deeper ones are cut here).
MAX_SHOWN: Final = 1000
#: A record longer than this is not an exposure (1,000 ids of 256 bytes and the rest).
MAX_EXPOSURE_BYTES: Final = 300_000
_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{12}$")
#: The Kafka record header (and JSON field) that names the answer an interaction responds to.
RECOMMENDATION_HEADER: Final = "recommendation_id"


class _RandomIds:
    """12 URL-safe characters from 72 bits of ``os.urandom``, read 512 ids at a time: one
    system call per id was a third of what logging an answer cost (3.6 of 17 µs, profiled)."""

    _BATCH: Final = 512

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: list[str] = []
        # A forked child must not hand out the ids its parent still holds.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._ids = []

    def __call__(self) -> str:
        with self._lock:
            if not self._ids:
                raw = base64.urlsafe_b64encode(os.urandom(9 * self._BATCH)).decode("ascii")
                self._ids = [raw[k : k + 12] for k in range(0, len(raw), 12)]
            return self._ids.pop()


#: A fresh id: 12 URL-safe characters (72 random bits: collisions are negligible).
new_recommendation_id: Final = _RandomIds()


def is_recommendation_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.match(value) is not None


@dataclass(frozen=True, slots=True)
class Exposure:
    """One answer as shown.

    Attributes
    ----------
    id : str
        The ``recommendation_id`` the answer carried.
    timestamp_ms : int
        When it was answered.
    user : str or None
        Who it was for (None for an anonymous ``items=`` session, whose items are ``session``).
    items : tuple of str
        What was shown, in order.
    route : str
        Which route answered (``/recommend``, ``/similar``, ...).
    model_version, family : int, str
        The model that answered (the champion's, in an experiment).
    arm : "champion", "challenger" or None
        The A/B arm that answered (None outside an A/B experiment).
    credit : tuple of arms, or None
        In an interleaving experiment, which arm contributed each shown item.
    experiment : str or None
        The experiment it belongs to.
    challenger_version : int or None
        The challenger model's version, in an experiment.
    """

    id: str
    timestamp_ms: int
    user: str | None
    items: tuple[str, ...]
    route: str
    model_version: int
    family: str
    arm: Arm | None = None
    credit: tuple[Arm, ...] | None = None
    experiment: str | None = None
    challenger_version: int | None = None
    session: tuple[str, ...] = field(default_factory=tuple)

    def arm_of(self, position: int) -> Arm:
        """The arm credited with the item at ``position`` (the answering arm outside
        interleaving; the champion outside experiments)."""
        if self.credit is not None and position < len(self.credit):
            return self.credit[position]
        return self.arm or "champion"

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "ts": self.timestamp_ms,
            "user": self.user,
            "items": list(self.items),
            "route": self.route,
            "model_version": self.model_version,
            "family": self.family,
        }
        if self.session:
            record["session"] = list(self.session)
        if self.arm is not None:
            record["arm"] = self.arm
        if self.credit is not None:
            record["credit"] = list(self.credit)
        if self.experiment is not None:
            record["experiment"] = self.experiment
        if self.challenger_version is not None:
            record["challenger_version"] = self.challenger_version
        return record


def encode_exposure(exposure: Exposure) -> bytes:
    return json.dumps(exposure.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()


def _ids(value: Any, limit: int) -> tuple[str, ...] | None:
    if not isinstance(value, list) or len(value) > limit:
        return None
    if not all(isinstance(v, str) and 0 < len(v) <= 256 for v in value):
        return None
    return tuple(value)


def decode_exposure(raw: bytes | None) -> Exposure | None:
    """An exposure record back, or None for anything malformed (counted by the caller)."""
    if raw is None or len(raw) > MAX_EXPOSURE_BYTES:
        return None
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    items = _ids(record.get("items"), MAX_SHOWN)
    ts, version = record.get("ts"), record.get("model_version")
    user = record.get("user")
    if (
        items is None
        or not is_recommendation_id(record.get("id"))
        or not isinstance(ts, int)
        or isinstance(ts, bool)
        or not isinstance(version, int)
        or not (user is None or (isinstance(user, str) and 0 < len(user) <= 256))
        or not isinstance(record.get("route", ""), str)
    ):
        return None
    arm = record.get("arm")
    credit = record.get("credit")
    if arm is not None and arm not in ARMS:
        return None
    if credit is not None and (
        not isinstance(credit, list)
        or len(credit) != len(items)
        or not all(c in ARMS for c in credit)
    ):
        return None
    experiment = record.get("experiment")
    challenger = record.get("challenger_version")
    return Exposure(
        id=record["id"],
        timestamp_ms=ts,
        user=user,
        items=items,
        route=str(record.get("route", ""))[:64],
        model_version=version,
        family=str(record.get("family", "als"))[:32],
        arm=arm,
        credit=tuple(credit) if credit is not None else None,
        experiment=str(experiment)[:64] if experiment is not None else None,
        challenger_version=challenger if isinstance(challenger, int) else None,
        session=_ids(record.get("session"), MAX_SHOWN) or (),
    )


def shown(items: Sequence[str]) -> tuple[str, ...]:
    """The items of an answer as an exposure records them (bounded)."""
    return tuple(items[:MAX_SHOWN])
