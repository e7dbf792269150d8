"""Which snapshot a starting builder resumes from, and what it moves aside on the way.

The newest snapshot that loads and verifies wins. Newer ones that do not load are quarantined
(moved aside once, logged, counted): never a reason to stop. A snapshot of *another topic* above
snapshots of ours is quarantined too (a stray copy must not stop every start); a store that holds
only other topics' snapshots is another builder's store, and starting on it is an operator's
mistake, said in one line (nothing is moved).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, SnapshotError
from ..models import model_class
from ..quality import GateModel
from ..snapshot import Snapshot, load_published, read_published_manifest
from ..store import SnapshotStore
from .config import BuilderStats

__all__ = ["ServingModel", "find_resumable", "positions_of", "quarantine"]

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


@dataclass(frozen=True, slots=True)
class ServingModel:
    """What the quality gate compares against: the newest published model, when it was made, and
    the next offset per partition it had consumed (events at or after those it has not seen)."""

    model: GateModel
    positions: dict[int, int]
    created_at: float
    #: Built from part of the backlog: never held against a model of all of it.
    partial: bool = False

    @classmethod
    def of(cls, snapshot: Snapshot) -> ServingModel:
        """The gate's view of a loaded snapshot (any family)."""
        manifest = snapshot.manifest
        params = (manifest.get("model") or {}).get("params") or manifest.get("params", {})
        model = model_class(snapshot.family)
        fitted = model.from_arrays(
            {name: snapshot.arrays[name] for name in model.ARRAYS}, params, len(snapshot.item_ids)
        )
        return cls(
            GateModel(snapshot.item_ids, fitted, snapshot.arrays["popularity"]),
            positions_of(manifest.get("partitions", {})),
            float(manifest.get("created_at", time.time())),
            partial=manifest.get("partial") is True,
        )


def positions_of(partitions: dict[str, Any]) -> dict[int, int]:
    """A manifest's next offset per partition."""
    return {int(p): int(pos["next_offset"]) for p, pos in partitions.items()}
