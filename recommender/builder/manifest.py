"""What a published snapshot's manifest says about the retrain that made it."""

from __future__ import annotations

from typing import Any

from ..models import Setting
from ..window import WindowMatrix
from .config import BuilderConfig

__all__ = ["retrain_manifest"]


def retrain_manifest(
    config: BuilderConfig,
    matrix: WindowMatrix,
    setting: Setting,
    *,
    params_source: str,
    partitions: dict[str, dict[str, Any]],
    topic_id: str | None,
    tuning: dict[str, Any] | None,
    training_seconds: float,
    quality: dict[str, Any] | None,
    partial: bool,
    store_id: str | None,
    builder: dict[str, Any],
) -> dict[str, Any]:
    """The descriptive fields of a snapshot's manifest (the format adds version, time, files)."""
    return {
        "topic": config.topic,
        "topic_id": topic_id,
        "partitions": partitions,
        "window": {
            "events": matrix.events,
            "users": len(matrix.user_ids),
            "items": len(matrix.item_ids),
            "pairs": int(matrix.user_items.nnz),
            "min_timestamp_ms": matrix.min_timestamp_ms,
            "max_timestamp_ms": matrix.max_timestamp_ms,
            "max_events": config.window_events,
            "max_age_seconds": config.window_seconds,
            "half_life_seconds": config.half_life_seconds,
            "newest_weight": matrix.newest_weight,
            "order": None if matrix.order is None else matrix.order.to_dict(),
        },
        "ratings": None if config.ratings is None else config.ratings.to_dict(),
        "model": setting.to_dict(),
        # The family's settings also at the top level, where readers before families look.
        "params": dict(setting.params),
        "params_source": params_source,
        "pinned": sorted(config.pinned),
        "tune": config.tune,
        "tuning": tuning,
        "training_seconds": round(training_seconds, 4),
        "device": config.device,
        "quality": quality,
        "partial": partial,
        "store": {"id": store_id},
        # Counters as of this retrain's start, this publication included.
        "builder": builder,
    }
