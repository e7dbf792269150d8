"""Small builders shared by the unit tests."""

import numpy as np

from recommender.events import format_event, parse_values
from recommender.synthetic import random_snapshot_arrays  # noqa: F401  (tests use it from here)
from recommender.window import InteractionWindow


def append_events(
    window: InteractionWindow, events, *, partition=0, start_offset=0, timestamps=None
):
    """Append (user, item[, weight]) tuples as one batch with consecutive offsets (and, unless
    given, timestamps equal to the offsets)."""
    batch = parse_values([format_event(*e) for e in events])
    n = len(batch)
    stamps = (
        np.arange(start_offset, start_offset + n, dtype=np.int64)
        if timestamps is None
        else np.asarray(timestamps, np.int64)
    )
    window.append(
        batch,
        timestamps_ms=stamps,
        partitions=np.full(n, partition, dtype=np.int64),
        offsets=np.arange(start_offset, start_offset + n, dtype=np.int64),
    )


def dense(matrix):
    """A WindowMatrix as {(user, item): weight}."""
    coo = matrix.user_items.tocoo()
    return {
        (matrix.user_ids[r], matrix.item_ids[c]): float(v)
        for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)
    }


def publish_window(model_dir, version, events, *, factors=2, params=None, manifest=None):
    """Train on ``events`` and publish snapshot ``version`` (``manifest`` adds keys to its
    manifest); returns its path."""
    from pathlib import Path

    from recommender.models.als_training import AlsParams, train_als
    from recommender.snapshot import publish_snapshot, snapshot_arrays

    window = InteractionWindow(1_000_000)
    append_events(window, events)
    matrix = window.matrix()
    # Toy matrices of a few dozen users: pin a light regularisation (the defaults are chosen
    # for real data sets, where lambda 32 is right; here it would flatten every factor).
    params = params or AlsParams(factors=factors, iterations=8, regularization=0.05, alpha=1.0)
    trained = train_als(matrix.user_items, params)
    manifest = {
        "topic": "t",
        "partitions": {"0": {"window_start": 0, "next_offset": len(events)}},
        "params": params.to_dict(),
        **(manifest or {}),
    }
    return Path(publish_snapshot(model_dir, version, snapshot_arrays(matrix, trained), manifest))


def publish_family(model_dir, version, events, family, params=None):
    """Fit model family ``family`` (EASE, kNN, ...) with ``params`` on ``events`` and publish
    snapshot ``version``, as the builder would; returns its path."""
    from pathlib import Path

    from recommender.models import make_family
    from recommender.snapshot import publish_snapshot, snapshot_arrays

    window = InteractionWindow(1_000_000)
    append_events(window, events)
    matrix = window.matrix()
    trainer = make_family(family)
    settings = trainer.validate(params or {})
    fitted = trainer.fit(matrix.training_data(), settings)
    manifest = {
        "topic": "t",
        "partitions": {"0": {"window_start": 0, "next_offset": len(events)}},
        "model": {"family": family, "params": settings},
        "params": settings,
    }
    return Path(publish_snapshot(model_dir, version, snapshot_arrays(matrix, fitted), manifest))


def block_events(groups=2, users_per=20, items_per=10):
    """Checkerboard events: user g<g>u<u> touched every item g<g>i<i> except i == u % items_per."""
    return [
        (f"g{g}u{u}", f"g{g}i{i}")
        for g in range(groups)
        for u in range(users_per)
        for i in range(items_per)
        if i != u % items_per
    ]
