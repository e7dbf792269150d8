"""The prequential section of the ``recommender evaluate`` report: the stream replayed through
the daemons' window, retrain and fold-in code for each window length and retrain frequency, and
the best setting again with each ``--half-lives`` value."""

from __future__ import annotations

import time
from typing import Any

from tqdm import tqdm

from ..models.als_training import AlsParams
from .data import Interactions
from .options import TITLES, EvaluateOptions
from .preconditions import prequential_retrains
from .prequential import PrequentialResult, run_prequential
from .report import Report, params_text

__all__ = ["prequential_section"]


def prequential_section(
    report: Report, data: Interactions, params: AlsParams, options: EvaluateOptions
) -> None:
    """Replay ``data`` with ``params`` for every window x retrain setting; tables and plots."""
    n = options.k0
    retrain_every = prequential_retrains(data, options)
    report.md(
        f"## {TITLES['prequential']}",
        "",
        f"Events replayed {'in a seeded shuffle' if data.timestamps is None else 'in time order'}"
        f" through the daemons' own window, retrain and fold-in code; before each event is "
        f"learned, the user's top-{n} is asked for (fresh events since the last retrain "
        f"folded in, as the server does) and a hit recorded if the event's item is in it. "
        f"ALS: {params_text(params)}.",
        "",
    )
    if dropped := sorted(set(options.retrain_every) - set(retrain_every)):
        report.md(
            f"Not replayed: retrain every {', '.join(f'{e:,}' for e in dropped)} events (the "
            f"stream has {len(data):,}, so no model would exist before it ends).",
            "",
        )
    rows, results = [], []
    total = len(data) * len(options.windows) * len(retrain_every)
    with tqdm(total=total, desc="prequential", unit="ev", disable=not options.progress) as bar:
        for window in options.windows:
            for every in retrain_every:
                size = window or len(data)
                started = time.perf_counter()
                result = run_prequential(
                    data,
                    window_events=size,
                    retrain_every=every,
                    params=params,
                    n=n,
                    seed=options.seed,
                    progress=bar.update,
                )
                results.append(result)
                rows.append(
                    [
                        f"{size:,}" + (" (all)" if not window else ""),
                        f"{every:,}",
                        result.recall,
                        result.hits.size,
                        result.retrains,
                        result.train_seconds,
                        time.perf_counter() - started,
                    ]
                )
    report.table(
        [
            "window events",
            "retrain every",
            f"recall@{n}",
            "events scored",
            "retrains",
            "train s (total)",
            "replay s",
        ],
        rows,
    )

    def curves(ax: Any) -> None:
        for r in results:
            x, y = r.curve()
            ax.plot(x, y, label=f"window {r.window_events:,}, retrain every {r.retrain_every:,}")
        ax.set_xlabel("event in the stream")
        ax.set_ylabel(f"recall@{n} (per slice)")
        ax.set_title("Prequential recall over the stream")
        ax.legend(fontsize=7)

    report.plot("prequential_over_time.png", curves)

    def by_window(ax: Any) -> None:
        for every in retrain_every:
            pts = [
                (r.window_events, r.recall, r.train_seconds)
                for r in results
                if r.retrain_every == every
            ]
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker="o",
                label=f"retrain every {every:,}",
            )
            for w, rec, secs in pts:
                ax.annotate(f"{secs:.0f} s", (w, rec), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("window length (events); labels: total retrain seconds")
        ax.set_ylabel(f"recall@{n}")
        ax.set_title("Quality vs window length, with retrain cost")
        ax.legend(fontsize=8)

    report.plot("prequential_by_window.png", by_window)
    top = max(results, key=lambda r: r.recall)
    report.summary.append(
        f"**{TITLES['prequential']}**: best recall@{n} {top.recall:.4f} over "
        f"{top.hits.size:,} scored events (window {top.window_events:,}, retrain every "
        f"{top.retrain_every:,}); no baseline is replayed, so there is nothing to compare with."
    )
    if options.half_lives:
        best = max(results, key=lambda r: r.recall)
        report.json["prequential_decay"] = _decay(report, data, params, options, best)
    report.json["prequential"] = [
        {
            "window_events": r.window_events,
            "retrain_every": r.retrain_every,
            "n": r.n,
            "recall": r.recall,
            "events_scored": int(r.hits.size),
            "retrains": r.retrains,
            "train_seconds": r.train_seconds,
            "curve": [list(map(float, c)) for c in r.curve()],
        }
        for r in results
    ]


def _decay(
    report: Report,
    data: Interactions,
    params: AlsParams,
    options: EvaluateOptions,
    plain: PrequentialResult,
) -> list[dict[str, float]]:
    """The best plain replay again with each ``--half-lives`` value (the builder's decay)."""
    report.md("### Time decay (`--half-life`)", "")
    if data.timestamps is None:
        report.md("This file has no event times, so there is no age to decay by.", "")
        return []
    rows: list[list[object]] = [["none (plain window)", plain.recall, "-"]]
    found = [{"half_life_seconds": 0.0, "recall": plain.recall}]
    for seconds in options.half_lives:
        result = run_prequential(
            data,
            window_events=plain.window_events,
            retrain_every=plain.retrain_every,
            params=params,
            n=plain.n,
            seed=options.seed,
            half_life_ms=max(1, int(seconds * 1000)),
        )
        change = f"{result.recall / plain.recall - 1:+.0%}" if plain.recall else "-"
        rows.append([f"{seconds / 86400:g} days", result.recall, change])
        found.append({"half_life_seconds": seconds, "recall": result.recall})
    report.md(
        f"The best replay above (window {plain.window_events:,}, retrain every "
        f"{plain.retrain_every:,}), once per half-life of event time.",
        "",
    )
    report.table(["half-life", f"recall@{plain.n}", "vs plain window"], rows)
    return found
