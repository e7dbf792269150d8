"""The item catalogue from the items topic: metadata, title search, and which items may be shown.

Applied the moment a record is read (no retrain): a hidden, deleted, expired or not-yet-available
item is never answered on any route, and ``category=`` / ``exclude_category=`` / ``label.k=v``
filters select by the catalogue. What a request needs of it, a model's columns, is computed by
:meth:`Catalog.columns` and cached by whoever holds that model (see
:mod:`recommender.serving.rules`), keyed by :meth:`Catalog.state` (the catalogue's version and
the time's next change). Memory is bounded in bytes (``max_bytes``, an estimate from each
record's size: measured 1.25 times a record's JSON, and about 430 bytes a remembered deletion)
and in ids (``max_items``): a new item past either is refused and counted (``catalog_full``);
past the bytes, the oldest remembered deletions are forgotten first (counted).

Pure and thread-safe: the follower thread updates it while request handlers read it. Records
are parsed before the lock is taken, and applied under it a few hundred at a time, so a request
never waits behind a burst.
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .records import Deletion, ItemRecord, Rejected, canonical, parse_item_record

__all__ = ["Catalog", "ItemFilter", "normalize_title"]

IntArray = npt.NDArray[np.int64]
#: Forgiving matches score at least this (rapidfuzz WRatio, 0 to 100) against the typed title.
FORGIVING_CUTOFF: Final = 75.0
_NOT_WORD = re.compile(r"[^\w]+")
#: Records applied under the lock at once (a request waits at most for these).
_APPLY_STEP: Final = 256


def normalize_title(text: str) -> str:
    """Case, accents and punctuation folded away: 'Pokémon: The Movie!' -> 'pokemon the movie'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NOT_WORD.sub(" ", plain).split())


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """Which items a request allows: any of ``categories`` (none: any item), none of
    ``exclude_categories``, every ``labels`` equality (values as a query writes them: see
    :func:`.records.canonical`)."""

    categories: frozenset[str] = frozenset()
    exclude_categories: frozenset[str] = frozenset()
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def selects(self) -> bool:
        """Whether only some items are allowed (categories or labels given)."""
        return bool(self.categories or self.labels)

    def __bool__(self) -> bool:
        return bool(self.categories or self.exclude_categories or self.labels)


class Catalog:
    """Known items' records, searchable by title, with the rules of what may be shown."""

    def __init__(self, *, max_items: int = 5_000_000, max_bytes: int = 512 << 20) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        #: The estimated memory held (records and remembered deletions).
        self.bytes = 0
        #: Deletions forgotten to stay within ``max_bytes`` (oldest first).
        self.forgotten_deletions = 0
        self._items: dict[str, ItemRecord] = {}
        self._deleted: dict[str, None] = {}  # in the order deleted: the oldest forgotten first
        self._titles: dict[str, str] = {}  # id -> lower-case title
        self._normal: dict[str, str] = {}  # id -> normalized title (forgiving matches)
        self._by_category: dict[str, set[str]] = {}
        self._timed: set[str] = set()  # items with an available_from or an expires_at
        self._hidden: set[str] = set()
        self._bounds: tuple[int, npt.NDArray[np.int64]] = (-1, np.zeros(0, np.int64))
        self._lock = threading.Lock()
        self.version = 0
        self.rejected: dict[str, int] = {}
        #: Attributes left out of records that were applied (wrong type, size or name).
        self.ignored_attributes = 0
        self.applied = 0

    def __len__(self) -> int:
        return len(self._items)

    # -- records -------------------------------------------------------------------------------

    def update(self, values: Iterable[bytes | None], keys: Iterable[bytes | None] = ()) -> int:
        """Apply items-topic records (values, with their keys for tombstones); returns how
        many were applied. A later record of an id replaces the earlier one."""
        return len(self.apply(values, keys))

    def apply(
        self, values: Iterable[bytes | None], keys: Iterable[bytes | None] = ()
    ) -> list[ItemRecord | Deletion]:
        """As :meth:`update`; returns what was applied."""
        keys = list(keys)
        records = [
            parse_item_record(keys[k] if k < len(keys) else None, value)
            for k, value in enumerate(values)
        ]
        done: list[ItemRecord | Deletion] = []
        for lo in range(0, len(records), _APPLY_STEP):
            with self._lock:
                done += self._apply(records[lo : lo + _APPLY_STEP])
        return done

    def _apply(
        self, records: list[ItemRecord | Deletion | Rejected]
    ) -> list[ItemRecord | Deletion]:
        done: list[ItemRecord | Deletion] = []
        for parsed in records:
            if isinstance(parsed, Rejected):
                self.rejected[parsed.reason] = self.rejected.get(parsed.reason, 0) + 1
                continue
            if isinstance(parsed, Deletion):
                self._remove(parsed.id)
                if parsed.id not in self._deleted:
                    self._deleted[parsed.id] = None
                    self.bytes += _deletion_bytes(parsed.id)
            elif parsed.id not in self._items and (
                len(self._items) >= self.max_items
                or self.bytes + _record_bytes(parsed) > self.max_bytes
            ):
                self.rejected["catalog_full"] = self.rejected.get("catalog_full", 0) + 1
                continue
            else:
                self._remove(parsed.id)
                if parsed.id in self._deleted:
                    del self._deleted[parsed.id]
                    self.bytes -= _deletion_bytes(parsed.id)
                self._add(parsed)
                self.ignored_attributes += parsed.ignored_attributes
            done.append(parsed)
        # Remembered to keep deleted items unshown; past the budget, the oldest are forgotten.
        while self._deleted and (
            self.bytes > self.max_bytes or len(self._deleted) > self.max_items
        ):
            gone = next(iter(self._deleted))
            del self._deleted[gone]
            self.bytes -= _deletion_bytes(gone)
            self.forgotten_deletions += 1
        if done:
            self.version += 1
            self.applied += len(done)
        return done

    def _add(self, record: ItemRecord) -> None:
        self._items[record.id] = record
        self.bytes += _record_bytes(record)
        title = record.metadata.get("title")
        self._titles[record.id] = str(title).lower() if title is not None else ""
        self._normal[record.id] = normalize_title(str(title or ""))
        for category in record.categories:
            self._by_category.setdefault(category, set()).add(record.id)
        if record.available_from_ms is not None or record.expires_at_ms is not None:
            self._timed.add(record.id)
        if record.hidden:
            self._hidden.add(record.id)

    def _remove(self, item: str) -> None:
        old = self._items.pop(item, None)
        if old is None:
            return
        self.bytes -= _record_bytes(old)
        self._titles.pop(item, None)
        self._normal.pop(item, None)
        self._timed.discard(item)
        self._hidden.discard(item)
        for category in old.categories:
            members = self._by_category.get(category)
            if members is not None:
                members.discard(item)
                if not members:
                    del self._by_category[category]

    def get(self, item: str) -> dict[str, Any] | None:
        """An item's metadata (for answers), or None."""
        record = self._items.get(item)
        return None if record is None else record.metadata

    def record(self, item: str) -> ItemRecord | None:
        return self._items.get(item)

    def newest_unknown(self, known: Mapping[str, int], limit: int) -> list[ItemRecord]:
        """Up to ``limit`` of the newest records with categories of items ``known`` lacks."""
        with self._lock:
            found = []
            for item in reversed(self._items):
                record = self._items[item]
                if record.categories and item not in known:
                    found.append(record)
                    if len(found) >= limit:
                        break
            return found

    def members(self, category: str) -> list[str]:
        """The items of ``category``."""
        with self._lock:
            return list(self._by_category.get(category, ()))

    def categories(self) -> dict[str, int]:
        """Each category and how many items are in it."""
        with self._lock:
            return {c: len(m) for c, m in self._by_category.items()}

    # -- what may be shown ---------------------------------------------------------------------

    def shown(self, item: str, now_ms: int | None = None) -> bool:
        """Whether ``item`` may be answered now (not hidden, deleted, expired or early)."""
        if item in self._deleted:
            return False
        record = self._items.get(item)
        return record is None or record.shown_at(now_ms if now_ms is not None else _now())

    def _epoch(self, now_ms: int) -> int:
        """Changes whenever an item's availability window opens or closes: part of the cache
        key, so a cached answer never outlives an item's expiry (call with the lock held)."""
        version, bounds = self._bounds
        if version != self.version:
            found = [
                b
                for item in self._timed
                for b in (self._items[item].available_from_ms, self._items[item].expires_at_ms)
                if b is not None
            ]
            bounds = np.unique(np.asarray(found, dtype=np.int64))
            self._bounds = (self.version, bounds)
        passed = int(np.searchsorted(bounds, now_ms, side="right"))
        return int(bounds[passed - 1]) if passed else 0

    def state(self, now_ms: int) -> tuple[int, int]:
        """What :meth:`columns` depends on besides its arguments: (the version, the time of the
        last opening or closing of an item's availability window). Every request asks: without
        timed items, and when nothing changed since the bounds were computed, no lock."""
        version, bounds = self._bounds
        if version == self.version:
            if not bounds.size:
                return version, 0
            passed = int(np.searchsorted(bounds, now_ms, side="right"))
            return version, int(bounds[passed - 1]) if passed else 0
        with self._lock:
            return self.version, self._epoch(now_ms)

    def columns(
        self,
        item_index: Mapping[str, int],
        item_filter: ItemFilter | None = None,
        *,
        catalog_only: bool = False,
        now_ms: int | None = None,
    ) -> tuple[IntArray, IntArray | None]:
        """For a model's columns: (the columns never to answer, the only columns allowed or
        None for any). Not cached here: the model's holder caches it (see :meth:`state`)."""
        now = now_ms if now_ms is not None else _now()
        with self._lock:
            # Deleted ids may far outnumber the model's items (tombstones of ids it never
            # knew): walk the smaller of the two.
            if len(self._deleted) > len(item_index):
                deleted = {i for i in item_index if i in self._deleted}
            else:
                deleted = {i for i in self._deleted if i in item_index}
            banned_ids = (
                deleted
                | self._hidden
                | {i for i in self._timed if not self._items[i].shown_at(now)}
            )
            allowed_ids: set[str] | None = None
            if item_filter is not None:
                for category in item_filter.exclude_categories:
                    banned_ids = banned_ids | self._by_category.get(category, set())
                if item_filter.categories:
                    allowed_ids = set()
                    for category in item_filter.categories:
                        allowed_ids |= self._by_category.get(category, set())
                if item_filter.labels:
                    candidates = allowed_ids if allowed_ids is not None else set(self._items)
                    allowed_ids = {i for i in candidates if _labelled(self._items[i], item_filter)}
            catalogue = set(self._items) if catalog_only else None
        banned = [item_index[i] for i in banned_ids if i in item_index]
        if catalogue is not None:
            banned += [c for item, c in item_index.items() if item not in catalogue]
        allowed = None
        if allowed_ids is not None:
            allowed = np.fromiter(
                sorted(
                    item_index[i] for i in allowed_ids if i in item_index and i not in banned_ids
                ),
                dtype=np.int64,
            )
        return np.unique(np.asarray(banned, dtype=np.int64)), allowed

    def allows(
        self,
        item: str,
        item_filter: ItemFilter | None,
        now_ms: int | None = None,
        *,
        catalog_only: bool = False,
    ) -> bool:
        """Whether ``item`` passes ``item_filter`` and may be shown (for items no model knows);
        with ``catalog_only`` as :meth:`columns` has it, only an item with a record."""
        if not self.shown(item, now_ms) or (catalog_only and item not in self._items):
            return False
        if item_filter is None or not item_filter:
            return True
        record = self._items.get(item)
        categories = record.categories if record is not None else frozenset()
        if categories & item_filter.exclude_categories:
            return False
        if item_filter.categories and not categories & item_filter.categories:
            return False
        return (record is not None and _labelled(record, item_filter)) or not item_filter.labels

    # -- search --------------------------------------------------------------------------------

    def search(self, query: str, n: int) -> list[dict[str, Any]]:
        """Items whose title contains ``query`` (any case); titles that start with it first."""
        needle = query.lower()
        with self._lock:
            hits = [
                (title.find(needle), item)
                for item, title in self._titles.items()
                if needle in title and self.shown(item)
            ]
        hits.sort(key=lambda hit: (hit[0] != 0, len(self._titles[hit[1]]), hit[1]))
        return [self._items[item].metadata for _, item in hits[:n]]

    def match(self, query: str, n: int) -> list[dict[str, Any]]:
        """Items whose titles match ``query`` forgivingly (case, accents, punctuation and small
        typos): normalized titles that contain it first (shortest first), then the closest by
        rapidfuzz's WRatio above a cut-off. For people typing titles into a chat."""
        from rapidfuzz import fuzz, process

        needle = normalize_title(query)
        if not needle:
            return []
        with self._lock:
            normal = {i: t for i, t in self._normal.items() if self.shown(i)}
        contained = sorted((len(title), item) for item, title in normal.items() if needle in title)
        found = [item for _, item in contained[:n]]
        if len(found) < n:
            close = process.extract(
                needle, normal, scorer=fuzz.WRatio, limit=n, score_cutoff=FORGIVING_CUTOFF
            )
            found += [item for _, _, item in close if item not in found][: n - len(found)]
        return [self._items[item].metadata for item in found]


def _record_bytes(record: ItemRecord) -> int:
    """A record's memory (parsed JSON, titles, category sets): measured 3,000 records of 60 KiB
    at 225 MB, 1.25 times their size; a fixed part for the small ones."""
    return record.size * 5 // 4 + 600 + 120 * len(record.categories)


def _deletion_bytes(item: str) -> int:
    """A remembered deletion: measured 100,000 of them at 43 MB."""
    return 400 + len(item)


def _labelled(record: ItemRecord, item_filter: ItemFilter) -> bool:
    labels = record.labels
    return all(k in labels and canonical(labels[k]) == v for k, v in item_filter.labels)


def _now() -> int:
    return int(time.time() * 1000)
