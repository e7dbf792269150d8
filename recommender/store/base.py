"""What every store offers: publish a version's files atomically, list, fetch locally, prune,
quarantine, one writer at a time.

Neutral about what it holds: a *version* is a set of named files, one of which is its manifest
(``manifest.json``, the commit point); :mod:`recommender.snapshot` says what the files mean.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final

from ..errors import SnapshotError
from .lease import WriterLease

__all__ = [
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "STATUS_NAME",
    "SnapshotStore",
    "check_document_name",
    "parse_status",
    "snapshot_name",
    "version_of",
]

#: The file that publishes a version: written last (its presence is the commit).
MANIFEST_NAME: Final = "manifest.json"
#: A manifest is a few kilobytes; anything this big is not one (and is not read whole).
MAX_MANIFEST_BYTES: Final = 8 << 20
#: The builder's live status (refusals, tuning) between publications: readers poll it.
STATUS_NAME: Final = "builder-status.json"
MAX_STATUS_BYTES: Final = 16 << 20  # documents: status, live quality checkpoints
#: The store's identity: created once, so a store emptied, restored or replaced is recognised.
IDENTITY_NAME: Final = "store-id"


_DOCUMENT_RE: Final = re.compile(r"^[a-z][a-z0-9-]{0,62}\.json$")


def check_document_name(name: str) -> str:
    if not _DOCUMENT_RE.match(name):
        raise ValueError(f"not a document name: {name!r}")
    return name


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
    """A place for versioned sets of files (snapshots): a local directory or an object-store
    prefix.

    Publication is atomic for readers: a version is either listed by :meth:`versions` with all
    its files in place, or not listed. One writer at a time holds :meth:`writer_lock`, and
    :meth:`commit` refuses to publish for a writer that no longer holds it; any number of readers
    read the store.
    """

    #: Where the store is, for messages (a path or a URL).
    location: str

    # -- reading -------------------------------------------------------------------------------

    @abstractmethod
    def versions(self) -> list[int]:
        """Published snapshot versions, oldest first."""

    @abstractmethod
    def manifest_bytes(self, version: int) -> bytes:
        """The raw manifest of a published version, at most MAX_MANIFEST_BYTES + 1 bytes of it
        (raises SnapshotError if it is gone or unreadable)."""

    def read_manifest(self, version: int) -> dict[str, Any]:
        """The manifest of a published version as a JSON object, unvalidated (raises
        SnapshotError); :func:`recommender.snapshot.read_published_manifest` validates."""
        raw = self.manifest_bytes(version)
        where = f"{self.location}/{snapshot_name(version)}"
        if len(raw) > MAX_MANIFEST_BYTES:
            raise SnapshotError(f"{where}: manifest is over {MAX_MANIFEST_BYTES:,} bytes")
        try:
            manifest = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise SnapshotError(f"{where}: unreadable manifest: {str(exc)[:200]}") from None
        if not isinstance(manifest, dict):
            raise SnapshotError(f"{where}: bad manifest: not a JSON object")
        return manifest

    @abstractmethod
    def local_copy(self, version: int) -> Path:
        """A local directory holding the version's files (the version itself for a local
        store; a download into a cache for an object store)."""

    def latest(self) -> int | None:
        found = self.versions()
        return found[-1] if found else None

    @abstractmethod
    def identity(self, *, create: bool = False) -> str | None:
        """The store's id (None if it has none; ``create``: make one if absent). A store that
        was emptied, restored or replaced has another id, or none."""

    # -- writing (one builder at a time) -------------------------------------------------------

    @abstractmethod
    def writer_lock(self, *, ttl: float = 60.0) -> AbstractContextManager[WriterLease]:
        """Held by the one writer of this store (raises ConfigError if another holds it); a
        lease not renewed for ``ttl`` seconds may be taken over by another writer."""

    @abstractmethod
    def highest_version(self) -> int:
        """The highest version number used here, published or quarantined (0: none): a new
        snapshot must take a higher one."""

    @abstractmethod
    def staging(self) -> AbstractContextManager[Path]:
        """A local directory to write a new snapshot's files into (removed afterwards)."""

    @abstractmethod
    def commit(self, staged: Path, version: int, *, lease: WriterLease | None = None) -> str:
        """Publish the files of ``staged`` (one of them MANIFEST_NAME) as ``version``,
        atomically; returns where it went. Raises SnapshotError if the version exists, and
        LockLost (before anything is visible to readers) if ``lease`` is no longer held."""

    @abstractmethod
    def prune(self, keep: int) -> list[int]:
        """Remove all but the newest ``keep`` published snapshots; returns the removed versions."""

    @abstractmethod
    def quarantine(self, version: int, reason: str) -> str | None:
        """Move an unreadable snapshot aside (it stops being listed, its number stays used);
        returns where it went, or None if it was already gone."""

    @abstractmethod
    def write_document(self, name: str, document: dict[str, Any]) -> None:
        """Replace the small JSON document ``name`` (atomically): the builder's status, the
        monitor's live quality. Names are checked: plain file names ending in ``.json``."""

    @abstractmethod
    def read_document(self, name: str) -> dict[str, Any] | None:
        """The JSON document ``name``, or None if there is none (or it is unreadable)."""

    def write_status(self, status: dict[str, Any]) -> None:
        """Replace the builder's status document."""
        self.write_document(STATUS_NAME, status)

    def read_status(self) -> dict[str, Any] | None:
        """The builder's status document, or None."""
        return self.read_document(STATUS_NAME)

    @abstractmethod
    def cleanup_incomplete(self) -> list[str]:
        """Remove what writers killed mid-publication left behind (call with the lock held)."""
