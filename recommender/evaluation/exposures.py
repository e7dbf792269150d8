"""``recommender evaluate DATA_FILE --exposures FILE``: the live-quality figures, offline.

``FILE`` holds exposure records one per line, as the servers log them to the exposures topic
(dump the topic's values with any Kafka client). They are joined with ``DATA_FILE``'s
interactions in event-time order by the monitor's own join (:mod:`recommender.online.join`),
so the figures are the ones the live page shows for the same events: exposures, hits, hit rate,
hits by position, time to the first like, per model version and arm, and experiment verdicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecommenderError
from ..online.attribution import CLOCK_TOLERANCE_MS
from ..online.exposures import MAX_EXPOSURE_BYTES, Exposure, decode_exposure
from ..online.join import OnlineJoin
from .data import Interactions

__all__ = ["exposure_figures", "figures_markdown"]


def read_exposures(path: Path) -> tuple[list[Exposure], int]:
    """The exposure records of ``path`` (JSON lines), and how many lines were malformed."""
    found, malformed = [], 0
    try:
        with path.open("rb") as f:
            for line in f:
                if len(line) > MAX_EXPOSURE_BYTES or not line.strip():
                    malformed += bool(line.strip())
                    continue
                exposure = decode_exposure(line.strip())
                if exposure is None:
                    malformed += 1
                else:
                    found.append(exposure)
    except OSError as exc:
        raise RecommenderError(f"--exposures {path}: {exc.strerror}") from None
    return found, malformed


def exposure_figures(
    data: Interactions, path: Path, *, window_seconds: float = 1800.0
) -> dict[str, Any]:
    """The monitor's report for these exposures and interactions (timestamps in seconds)."""
    if data.timestamps is None:
        raise RecommenderError(
            f"{data.source} has no timestamps: attribution needs to know when each event happened"
        )
    exposures, malformed = read_exposures(path)
    if not exposures:
        raise RecommenderError(f"--exposures {path}: no exposure records in it")
    join = OnlineJoin(window_ms=int(window_seconds * 1000))
    stamps = data.timestamps.astype(np.int64) * 1000
    order = np.argsort(stamps, kind="stable")
    exposures.sort(key=lambda e: e.timestamp_ms)
    k = 0
    for position, index in enumerate(order.tolist()):
        ts = int(stamps[index])
        # Exposures up to the clock tolerance later count as shown already (files often have
        # whole seconds, exposures milliseconds), as they may live.
        while k < len(exposures) and exposures[k].timestamp_ms <= ts + CLOCK_TOLERANCE_MS:
            join.exposure(exposures[k], 0, k)
            k += 1
        join.interaction(
            data.user_ids[int(data.users[index])],
            data.item_ids[int(data.items[index])],
            float(data.weights[index]),
            ts,
            0,
            position,
        )
        join.release(ts)
    for rest in range(k, len(exposures)):
        join.exposure(exposures[rest], 0, rest)
    join.release(2**62)
    newest = max(int(stamps.max()), exposures[-1].timestamp_ms)
    return {**join.report(newest), "malformed_exposures": malformed}


def figures_markdown(figures: dict[str, Any]) -> list[str]:
    """The figures as report lines: a table per period, by version and arm, and verdicts."""
    lines = [
        "## Online figures from the exposure log",
        "",
        f"{figures['counts']['exposures']:,} exposures, {figures['counts']['interactions']:,} "
        f"interactions ({figures['counts']['attributed']:,} attributed); "
        f"{figures['malformed_exposures']} malformed exposure records skipped.",
        "",
        "| period | group | exposures | hits | hit rate | likes | negatives "
        "| seconds to first like |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, period in figures["live"]["periods"].items():
        rows = [("all", period)]
        rows += [(f"arm {a}", c) for a, c in period["arms"].items()]
        rows += [(f"v{v}", c) for v, c in period["versions"].items()]
        for label, c in rows:
            rate = "-" if c["hit_rate"] is None else f"{c['hit_rate']:.3f}"
            delay = c["seconds_to_first_like"]
            delay_text = "-" if delay is None else f"{delay:.1f}"
            lines.append(
                f"| {name} | {label} | {c['exposures']:,} | {c['hits']:,} | {rate} | "
                f"{c['likes']:,} | {c['negatives']:,} | {delay_text} |"
            )
    for key, verdict in figures["experiments"].items():
        lines += ["", f"Experiment {key} ({verdict['mode']}): **{verdict['verdict']}**, "
                  f"{verdict['reason']}."]  # fmt: skip
    return [*lines, ""]
