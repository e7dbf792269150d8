"""What every snapshot store offers: publish atomically, list, fetch locally, prune, quarantine."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final

from ..snapshot import Snapshot, load_snapshot

__all__ = ["STATUS_NAME", "SnapshotStore", "parse_status", "snapshot_name", "version_of"]

#: The builder's live status (refusals, tuning) between publications: readers poll it.
STATUS_NAME: Final = "builder-status.json"
MAX_STATUS_BYTES: Final = 1 << 20


def parse_status(raw: bytes | None) -> dict[str, Any] | None:
    """A status document, or None if absent, too big or not a JSON object."""
    if raw is None or len(raw) > MAX_STATUS_BYTES:
        return None
    try:
        status = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return status if isinstance(status, dict) else None


_NAME_RE: Final = re.compile(r"^v(\d{12})$")


def snapshot_name(version: int) -> str:
    """The published name of a snapshot: ``v`` and 12 digits (names sort like versions)."""
    return f"v{version:012d}"


def version_of(name: str) -> int | None:
    """The version a published name stands for, or None for any other name."""
    match = _NAME_RE.match(name)
    return int(match.group(1)) if match else None


class SnapshotStore(ABC):
    """A place for snapshots: a local directory or an object-store prefix.

    Publication is atomic for readers: a snapshot is either listed by :meth:`versions` with all
    its files in place, or not listed. A snapshot's *version* is the number it is published under;
    its manifest must carry the same number (a copy under another number is refused when read).
    One builder writes a store at a time (:meth:`writer_lock`); any number of servers read it.
    """

    #: Where the store is, for messages (a path or a URL).
    location: str

    # -- reading -------------------------------------------------------------------------------

    @abstractmethod
    def versions(self) -> list[int]:
        """Published snapshot versions, oldest first."""

    @abstractmethod
    def read_manifest(self, version: int) -> dict[str, Any]:
        """The validated manifest of a published snapshot (raises SnapshotError)."""

    @abstractmethod
    def local_copy(self, version: int) -> Path:
        """A local directory holding the snapshot's files (the snapshot itself for a local
        store; a verified download into a cache for an object store)."""

    def latest(self) -> int | None:
        found = self.versions()
        return found[-1] if found else None

    def load(self, version: int, *, mmap: bool = True) -> Snapshot:
        """Load and verify a published snapshot (raises SnapshotError)."""
        return load_snapshot(self.local_copy(version), mmap=mmap, version=version)

    # -- writing (one builder at a time) -------------------------------------------------------

    @abstractmethod
    def writer_lock(self) -> AbstractContextManager[None]:
        """Held by the one builder that writes here (raises ConfigError if another holds it)."""

    @abstractmethod
    def highest_version(self) -> int:
        """The highest version number used here, published or quarantined (0: none): a new
        snapshot must take a higher one."""

    @abstractmethod
    def staging(self) -> AbstractContextManager[Path]:
        """A local directory to write a new snapshot's files into (removed afterwards)."""

    @abstractmethod
    def commit(self, staged: Path, version: int) -> str:
        """Publish the files of ``staged`` as ``version``, atomically; returns where it went.
        Raises SnapshotError if the version exists."""

    @abstractmethod
    def prune(self, keep: int) -> list[int]:
        """Remove all but the newest ``keep`` published snapshots; returns the removed versions."""

    @abstractmethod
    def quarantine(self, version: int, reason: str) -> str | None:
        """Move an unreadable snapshot aside (it stops being listed, its number stays used);
        returns where it went, or None if it was already gone."""

    @abstractmethod
    def write_status(self, status: dict[str, Any]) -> None:
        """Replace the builder's status document (atomically; small JSON)."""

    @abstractmethod
    def read_status(self) -> dict[str, Any] | None:
        """The builder's status document, or None if there is none (or it is unreadable)."""

    @abstractmethod
    def cleanup_incomplete(self) -> list[str]:
        """Remove what writers killed mid-publication left behind (call with the lock held)."""

    def iter_manifests(self) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
        """Published versions, newest first, each with its manifest or the error reading it."""
        for version in reversed(self.versions()):
            try:
                yield version, self.read_manifest(version)
            except Exception as exc:  # reported to the caller, who decides
                yield version, exc
