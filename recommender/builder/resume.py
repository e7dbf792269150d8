"""Which snapshot a starting builder resumes from, and what it moves aside on the way.

The newest snapshot that loads and verifies wins. Newer ones that do not load are quarantined
(moved aside once, logged, counted): never a reason to stop. A snapshot of *another topic* above
snapshots of ours is quarantined too (a stray copy must not stop every start); a store that holds
only other topics' snapshots is another builder's store, and starting on it is an operator's
mistake, said in one line (nothing is moved).
"""

from __future__ import annotations

import logging

from ..errors import ConfigError, SnapshotError
from ..snapshot import Snapshot, load_published, read_published_manifest
from ..store import SnapshotStore
from .config import BuilderStats

__all__ = ["find_resumable", "quarantine"]

log = logging.getLogger(__name__)


def quarantine(
    store: SnapshotStore,
    stats: BuilderStats,
    version: int,
    reason: str,
    *,
    what: str = "unreadable",
) -> None:
    """Move ``version`` aside, logged and counted; never raises."""
    stats.quarantined_snapshots += 1
    try:
        where = store.quarantine(version, reason)
    except SnapshotError as exc:
        log.error("%s snapshot v%d could not be moved aside: %s", what, version, exc)
        return
    log.error("moved %s snapshot v%d aside to %s: %s", what, version, where, reason)


def find_resumable(store: SnapshotStore, topic: str, stats: BuilderStats) -> Snapshot | None:
    """The newest loadable snapshot of ``topic`` in ``store`` (None: none), after moving aside
    the unreadable and foreign ones above it.

    Raises
    ------
    ConfigError
        Every readable snapshot in the store was built from another topic.
    """
    foreign: list[tuple[int, str]] = []
    for version in reversed(store.versions()):
        try:
            other = read_published_manifest(store, version).get("topic")
            if other != topic:
                foreign.append((version, str(other)))
                continue
            snapshot = load_published(store, version, mmap=False)
        except SnapshotError as exc:
            quarantine(store, stats, version, str(exc))
            continue
        for stray, other in foreign:
            quarantine(
                store,
                stats,
                stray,
                f"built from topic {other!r}, not {topic!r}, above this topic's v{version}",
                what="foreign",
            )
        return snapshot
    if foreign:
        version, other = foreign[0]
        raise ConfigError(
            f"the snapshots in {store.location} were built from topic {other!r} (newest "
            f"v{version}), not {topic!r}: use another --model-dir"
        )
    return None
