"""Where snapshots live: a local directory, or an object-store prefix (see :func:`open_store`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from ..errors import ConfigError
from .base import SnapshotStore, snapshot_name, version_of
from .local import LocalStore

__all__ = ["LocalStore", "SnapshotStore", "as_store", "open_store", "snapshot_name", "version_of"]

#: ``scheme:`` at the start of a location: a URL, never a local folder name.
_SCHEME_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def open_store(location: str | Path) -> SnapshotStore:
    """The store at ``location``: a local path, or ``file://`` URL.

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
    raise ConfigError(f"--model-dir {location!r}: unknown scheme {scheme!r}; use a local path")


def as_store(store: SnapshotStore | Path | str) -> SnapshotStore:
    """``store`` itself, or the store at a path or URL."""
    return store if isinstance(store, SnapshotStore) else open_store(store)
