"""Item metadata from the ``items`` topic (JSON objects with an ``id``), and title search.

Pure and thread-safe: a follower thread updates it while request handlers read it.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["Catalog", "parse_item"]

MAX_ITEM_BYTES = 64 * 1024
#: Forgiving matches score at least this (rapidfuzz WRatio, 0 to 100) against the typed title.
FORGIVING_CUTOFF: Final = 75.0
_NOT_WORD = re.compile(r"[^\w]+")


def normalize_title(text: str) -> str:
    """Case, accents and punctuation folded away: 'Pokémon: The Movie!' -> 'pokemon the movie'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NOT_WORD.sub(" ", plain).split())


def parse_item(value: bytes | None) -> dict[str, Any] | None:
    """A catalogue record, or None when the value is not a JSON object with a string/number id."""
    if not value or len(value) > MAX_ITEM_BYTES:
        return None
    try:
        record = json.loads(value)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    item_id = record.get("id")
    if isinstance(item_id, bool) or not isinstance(item_id, str | int) or str(item_id) == "":
        return None
    record["id"] = str(item_id)
    return record


class Catalog:
    """Known items' metadata, searchable by title."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}
        self._titles: dict[str, str] = {}  # id -> lower-case title
        self._normal: dict[str, str] = {}  # id -> normalized title (forgiving matches)
        self._lock = threading.Lock()
        self.version = 0
        self.rejected = 0
        self._excluded: tuple[tuple[int, int], npt.NDArray[np.int64]] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def update(self, values: list[bytes | None]) -> int:
        """Add or replace items from raw JSON values; returns how many were accepted."""
        records = [parse_item(v) for v in values]
        good = [r for r in records if r is not None]
        with self._lock:
            self.rejected += len(records) - len(good)
            for record in good:
                self._items[record["id"]] = record
                title = record.get("title")
                self._titles[record["id"]] = str(title).lower() if title is not None else ""
                self._normal[record["id"]] = normalize_title(str(title or ""))
            if good:
                self.version += 1
        return len(good)

    def get(self, item: str) -> dict[str, Any] | None:
        return self._items.get(item)

    def search(self, query: str, n: int) -> list[dict[str, Any]]:
        """Items whose title contains ``query`` (any case); titles that start with it first."""
        needle = query.lower()
        with self._lock:
            hits = [
                (title.find(needle), item)
                for item, title in self._titles.items()
                if needle in title
            ]
        hits.sort(key=lambda hit: (hit[0] != 0, len(self._titles[hit[1]]), hit[1]))
        return [self._items[item] for _, item in hits[:n]]

    def match(self, query: str, n: int) -> list[dict[str, Any]]:
        """Items whose titles match ``query`` forgivingly (case, accents, punctuation and small
        typos): normalized titles that contain it first (shortest first), then the closest by
        rapidfuzz's WRatio above a cut-off. For people typing titles into a chat."""
        from rapidfuzz import fuzz, process

        needle = normalize_title(query)
        if not needle:
            return []
        with self._lock:
            normal = dict(self._normal)
        contained = sorted((len(title), item) for item, title in normal.items() if needle in title)
        found = [item for _, item in contained[:n]]
        if len(found) < n:
            close = process.extract(
                needle, normal, scorer=fuzz.WRatio, limit=n, score_cutoff=FORGIVING_CUTOFF
            )
            found += [item for _, _, item in close if item not in found][: n - len(found)]
        return [self._items[item] for item in found]

    def excluded_columns(self, version: int, item_index: dict[str, int]) -> npt.NDArray[np.int64]:
        """Columns of a model (``version``, ``item_index``) that are *not* in the catalogue;
        cached per model and catalogue version, so a request pays nothing for the restriction."""
        key = (version, self.version)
        cached = self._excluded
        if cached is not None and cached[0] == key:
            return cached[1]
        with self._lock:
            cols = np.fromiter(
                (c for item, c in item_index.items() if item not in self._items), dtype=np.int64
            )
        self._excluded = (key, cols)
        return cols
