"""Where snapshots live: a local directory, or an object-store prefix (see :func:`open_store`).

Neutral: a store moves versioned sets of named files and their manifest; it imports nothing of
:mod:`recommender.snapshot`, which gives the files their meaning.

Local directories publish by rename (POSIX, NFS); object stores (``s3://``, ``gs://``, ``az://``)
by writing the manifest last and only if absent (:mod:`.objects`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from ..errors import ConfigError
from .base import MANIFEST_NAME, MAX_MANIFEST_BYTES, SnapshotStore, snapshot_name, version_of
from .lease import WriterLease
from .local import LocalStore
from .objlock import retry_transient

__all__ = [
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "OBJECT_SCHEMES",
    "LocalStore",
    "SnapshotStore",
    "WriterLease",
    "as_store",
    "open_store",
    "retry_transient",
    "snapshot_name",
    "version_of",
]

#: URL schemes served by an object store (obstore): S3 and compatible, GCS, Azure.
OBJECT_SCHEMES: Final = frozenset({"s3", "s3a", "gs", "az", "abfs", "abfss", "azure"})

#: ``scheme:`` at the start of a location: a URL, never a local folder name.
_SCHEME_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def open_store(
    location: str | Path,
    *,
    options: Mapping[str, str] | None = None,
    cache_dir: Path | None = None,
) -> SnapshotStore:
    """The store at ``location``: a local path, a ``file://`` URL, or an object-store URL
    (``s3://bucket/prefix``, ``gs://``, ``az://``) with client ``options`` (``--store-option``)
    and a local ``cache_dir`` for downloaded snapshots.

    Raises
    ------
    ConfigError
        ``location`` looks like a URL (``scheme:...``) of a kind this build cannot open, or is
        malformed: it is never taken for a local folder named after the scheme.
    """
    if isinstance(location, Path):
        return LocalStore(location)
    match = _SCHEME_RE.match(location)
    if match is None:
        return LocalStore(Path(location))
    scheme = match.group(1).lower()
    rest = location[match.end() :]
    if not rest.startswith("//"):
        raise ConfigError(
            f"--model-dir {location!r} is neither a path nor a URL (expected {scheme}://...); "
            f"for a local folder whose name has a colon, write ./{location}"
        )
    if scheme == "file":
        path = rest[2:]
        if not path.startswith("/"):
            raise ConfigError(f"--model-dir {location!r}: a file:// URL needs an absolute path")
        return LocalStore(Path(path))
    if scheme in OBJECT_SCHEMES:
        if not rest[2:].split("/", 1)[0]:
            raise ConfigError(f"--model-dir {location!r}: no bucket or container name")
        from .objects import ObjectStore

        return ObjectStore(location, options=options, cache_dir=cache_dir)
    raise ConfigError(
        f"--model-dir {location!r}: unknown scheme {scheme!r}; use a local path or one of "
        f"{', '.join(sorted(OBJECT_SCHEMES))}://"
    )


def as_store(store: SnapshotStore | Path | str) -> SnapshotStore:
    """``store`` itself, or the store at a path or URL."""
    return store if isinstance(store, SnapshotStore) else open_store(store)
