"""Item records of the items topic: what an item is, where it belongs, and whether it may be
shown.

A record is a JSON object with an ``id`` (a string or a number) and optionally

- ``title``, ``url`` and other metadata (shown with recommendations);
- ``categories``: a list of strings (at most 32, each at most 64 characters);
- ``labels``: a flat map of at most 32 names (letters, digits, ``_ . -``; at most 64
  characters) to strings (at most 256), numbers or booleans;
- ``attributes``: numeric features for ranking, a flat map of at most 32 names (as labels) to
  finite numbers of magnitude at most 1e15 (``{"price": 12.5, "year": 1995}``). Unlike the
  other fields, a bad attribute does not reject the record: it is left out and counted
  (:attr:`ItemRecord.ignored_attributes`), and the record's other fields apply;
- ``hidden``: true keeps the item out of every answer (sold out, withdrawn);
- ``available_from`` / ``expires_at``: RFC 3339 times or epoch seconds; outside that span the
  item is never answered;
- ``deleted``: true removes the item, as a tombstone does (a null value keyed by the item id).

A later record of an id replaces the earlier one. Every field is bounded; a record that breaks
a rule is skipped and counted by reason, never fatal. Pure.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

__all__ = [
    "MAX_ITEM_BYTES",
    "Deletion",
    "ItemRecord",
    "RejectReason",
    "Rejected",
    "parse_item_record",
]

MAX_ITEM_BYTES: Final = 64 * 1024
MAX_CATEGORIES: Final = 32
MAX_LABELS: Final = 32
MAX_NAME: Final = 64
MAX_LABEL_VALUE: Final = 256
MAX_ATTRIBUTES: Final = 32
MAX_ATTRIBUTE_VALUE: Final = 1e15
_LABEL_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

RejectReason = Literal[
    "too_big",
    "not_json",
    "not_an_object",
    "bad_id",
    "bad_categories",
    "bad_labels",
    "bad_hidden",
    "bad_time",
    "tombstone_without_key",
]

LabelValue = str | float | bool


def canonical(value: LabelValue) -> str:
    """A label value as a query writes it: ``true``/``false``, ``3`` for 3.0, else the text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return value


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """One item as its newest record describes it (times in epoch milliseconds)."""

    id: str
    metadata: dict[str, Any]
    categories: frozenset[str] = frozenset()
    labels: dict[str, LabelValue] = field(default_factory=dict)
    hidden: bool = False
    available_from_ms: int | None = None
    expires_at_ms: int | None = None
    #: The record's bytes as sent (what its memory is estimated from).
    size: int = 0
    #: Numeric features (ranking), and how many of the record's attributes were left out.
    attributes: dict[str, float] = field(default_factory=dict)
    ignored_attributes: int = 0

    def shown_at(self, now_ms: int) -> bool:
        """Whether the item may be answered at ``now_ms``."""
        if self.hidden:
            return False
        if self.available_from_ms is not None and now_ms < self.available_from_ms:
            return False
        return self.expires_at_ms is None or now_ms < self.expires_at_ms


@dataclass(frozen=True, slots=True)
class Deletion:
    id: str


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason


def _time_ms(value: Any) -> int | Rejected | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return Rejected("bad_time")
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > 1e11:  # epoch seconds, before year 5000
            return Rejected("bad_time")
        return int(value * 1000)
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return Rejected("bad_time")
        if parsed.tzinfo is None:
            return Rejected("bad_time")  # RFC 3339 names its offset
        return int(parsed.timestamp() * 1000)
    return Rejected("bad_time")


def _categories(value: Any) -> frozenset[str] | Rejected:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or len(value) > MAX_CATEGORIES:
        return Rejected("bad_categories")
    if not all(isinstance(c, str) and 0 < len(c) <= MAX_NAME for c in value):
        return Rejected("bad_categories")
    return frozenset(value)


def _labels(value: Any) -> dict[str, LabelValue] | Rejected:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_LABELS:
        return Rejected("bad_labels")
    labels: dict[str, LabelValue] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or not _LABEL_NAME.match(name):
            return Rejected("bad_labels")
        if isinstance(raw, bool) or (isinstance(raw, str) and len(raw) <= MAX_LABEL_VALUE):
            labels[name] = raw
        elif isinstance(raw, int | float) and math.isfinite(raw):
            labels[name] = float(raw)
        else:
            return Rejected("bad_labels")
    return labels


def _attributes(value: Any) -> tuple[dict[str, float], int]:
    """The valid attributes, and how many were left out (a map that is not one counts 1)."""
    if value is None:
        return {}, 0
    if not isinstance(value, dict):
        return {}, 1
    attributes: dict[str, float] = {}
    for name, raw in value.items():
        if (
            len(attributes) < MAX_ATTRIBUTES
            and isinstance(name, str)
            and _LABEL_NAME.match(name)
            and isinstance(raw, int | float)
            and not isinstance(raw, bool)
            and math.isfinite(raw)
            and abs(raw) <= MAX_ATTRIBUTE_VALUE
        ):
            attributes[name] = float(raw)
    return attributes, len(value) - len(attributes)


def parse_item_record(key: bytes | None, value: bytes | None) -> ItemRecord | Deletion | Rejected:
    """An items-topic record (``key``: the record key, which a tombstone needs)."""
    if value is None:
        if not key:
            return Rejected("tombstone_without_key")
        try:
            return Deletion(key.decode("utf-8"))
        except UnicodeDecodeError:
            return Rejected("bad_id")
    if len(value) > MAX_ITEM_BYTES:
        return Rejected("too_big")
    try:
        record = json.loads(value)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Rejected("not_json")
    if not isinstance(record, dict):
        return Rejected("not_an_object")
    item_id = record.get("id")
    if isinstance(item_id, bool) or not isinstance(item_id, str | int):
        return Rejected("bad_id")
    item = str(item_id)
    if not 0 < len(item) <= 256 or any(c in item for c in ":,\n\r\t"):
        return Rejected("bad_id")
    if record.get("deleted") is True:
        return Deletion(item)
    categories = _categories(record.get("categories"))
    labels = _labels(record.get("labels"))
    hidden = record.get("hidden", False)
    start, end = _time_ms(record.get("available_from")), _time_ms(record.get("expires_at"))
    for checked in (categories, labels, start, end):
        if isinstance(checked, Rejected):
            return checked
    if not isinstance(hidden, bool):
        return Rejected("bad_hidden")
    assert not isinstance(categories, Rejected) and not isinstance(labels, Rejected)
    assert not isinstance(start, Rejected) and not isinstance(end, Rejected)
    attributes, ignored = _attributes(record.get("attributes"))
    metadata = {
        k: v
        for k, v in record.items()
        if k
        not in ("categories", "labels", "hidden", "available_from", "expires_at", "deleted",
                "attributes")
    }  # fmt: skip
    metadata["id"] = item
    if categories:
        metadata["categories"] = sorted(categories)
    if attributes:
        metadata["attributes"] = attributes
    return ItemRecord(
        item, metadata, categories, labels, hidden, start, end, len(value), attributes, ignored
    )
