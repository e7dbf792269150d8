"""``recommender evaluate``: run the chosen protocols and write a Markdown/JSON report and plots."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from ..ratings import RatingScale
from ..training import AlsParams
from .daemon import daemon_settings
from .data import Interactions, read_interactions, with_rating_scale
from .models import SEED_ALS, AlsModel, ItemKnn, Popularity, Recommender
from .offline import ModelResult, evaluate_model, search_als
from .prequential import PrequentialResult, run_prequential
from .report import Report, params_text
from .seed_protocol import cross_validate, default_grid, score_seed, seed_protocol_split
from .splits import Split, global_cutoff, per_user_holdout, truth_sets

__all__ = ["EvaluateOptions", "Protocol", "run_evaluation"]

log = logging.getLogger(__name__)

Protocol = Literal["temporal", "global", "prequential", "seed"]
PROTOCOLS: tuple[Protocol, ...] = ("temporal", "global", "prequential", "seed")


@dataclass(frozen=True, kw_only=True)
class EvaluateOptions:
    data_file: Path
    output_dir: Path
    protocols: Sequence[Protocol] = ("temporal",)
    ks: Sequence[int] = (10,)
    min_rating: float | None = None
    #: Map weights through this rating scale (likes, neutral, dislikes), as the builder's
    #: --ratings does; models then learn from the weights instead of one per pair.
    ratings: str | None = None
    test_fraction: float = 0.2
    cutoff: float = 0.9
    search_budget: float = 60.0
    #: Self-tuning budget of the "what the daemon serves" row (0: leave the row out).
    daemon_budget: float = 90.0
    windows: Sequence[int] = (5000, 20000, 0)
    retrain_every: Sequence[int] = (1000, 5000)
    #: Prequential half-lives (seconds of event time) to compare with the plain window.
    half_lives: Sequence[float] = ()
    seed: int = 42
    plots: bool = True
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _baselines() -> list[Recommender]:
    return [
        Popularity(),
        ItemKnn("cosine"),
        ItemKnn("bm25"),
        AlsModel(SEED_ALS, name="ALS, seed settings"),
        AlsModel(AlsParams(), name="ALS, our defaults"),
    ]


def _offline(
    report: Report,
    split: Split,
    name: str,
    ks: Sequence[int],
    options: EvaluateOptions,
    note: str = "",
) -> AlsParams:
    """Baselines and tuned ALS on one split; returns the tuned settings."""
    binary = options.ratings is None  # ratings: learn from the weights they map to
    truth = truth_sets(split)
    report.md(
        f"## {name}",
        "",
        f"{split.description}. Training events: {len(split.train):,}; "
        f"test users with held-out items they did not already have: {len(truth):,}.",
        "",
    )
    if note:
        report.md(note, "")
    bar = tqdm(total=None, desc=f"{name}: search", unit="trial", disable=not options.progress)

    def scored(params: AlsParams, validation: Split) -> float:
        bar.update(1)
        k = 10 if 10 in ks else ks[0]
        return evaluate_model(AlsModel(params), validation, [k], binary=binary).metrics[k]["ndcg"]

    best, trials = search_als(
        split.train, budget_seconds=options.search_budget, seed=options.seed, fit_and_score=scored
    )
    bar.close()
    models: list[Recommender] = [*_baselines(), AlsModel(best, name="ALS, tuned on validation")]
    daemon_note = ""
    if options.daemon_budget > 0:
        served, outcome = daemon_settings(
            split.train, budget_seconds=options.daemon_budget, binary=binary, seed=options.seed
        )
        models.insert(
            -1,
            AlsModel(
                served, name=f"ALS, what the daemon serves (self-tuned {options.daemon_budget:g} s)"
            ),
        )
        daemon_note = (
            f"The daemon's row is what the builder serves after its first tuning session on the "
            f"training events ({len(outcome.trials)} trials in {outcome.seconds:.0f} s; "
            f"{'adopted ' + params_text(served) if outcome.adopted else 'kept its defaults'}: "
            f"{outcome.reason})."
        )
    results: list[ModelResult] = []
    for model in tqdm(models, desc=f"{name}: models", disable=not options.progress):
        results.append(evaluate_model(model, split, ks, binary=binary))
    k0 = 10 if 10 in ks else ks[0]
    header = [
        "model",
        *[f"{m}@{k0}" for m in ("precision", "recall", "ndcg", "map")],
        f"hit rate@{k0}",
        f"coverage@{k0}",
        "train s",
    ]
    report.table(
        header,
        [
            [
                r.name,
                *[
                    r.metrics[k0][m]
                    for m in ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")
                ],
                r.train_seconds,
            ]
            for r in results
        ],
    )
    if len(ks) > 1:
        report.table(
            ["model", *[f"NDCG@{k}" for k in ks]],
            [[r.name, *[r.metrics[k]["ndcg"] for k in ks]] for r in results],
        )
    pop = results[0].metrics[k0]["ndcg"]
    seed_ndcg = results[3].metrics[k0]["ndcg"]
    tuned = results[-1].metrics[k0]["ndcg"]
    report.md(
        f"Tuned ALS ({params_text(best)}; best of {len(trials)} trials scored on a validation "
        f"split carved from the training events only): NDCG@{k0} {tuned:.4f} = "
        f"{tuned / pop:.2f}x popularity and {tuned / seed_ndcg - 1:+.0%} vs the seed's settings.",
        "",
    )
    if daemon_note:
        daemon_ndcg = results[-2].metrics[k0]["ndcg"]
        report.md(
            daemon_note + f" NDCG@{k0} {daemon_ndcg:.4f} = {daemon_ndcg / tuned:.0%} of the "
            "full search's.",
            "",
        )

    def draw(ax: Any) -> None:
        for r in results:
            ax.plot(list(ks), [r.metrics[k]["ndcg"] for k in ks], marker="o", label=r.name)
        ax.set_xlabel("k")
        ax.set_ylabel("NDCG@k")
        ax.set_title(name)
        ax.legend(fontsize=8)

    report.plot(f"ndcg_vs_k_{name.split()[0].lower()}.png", draw)
    report.json[name] = {
        "split": split.description,
        "models": [asdict(r) for r in results],
        "search": [
            {"params": t.params, "validation_ndcg": t.ndcg, "seconds": t.seconds} for t in trials
        ],
        "tuned": best,
    }
    return best


def _prequential(
    report: Report, data: Interactions, params: AlsParams, options: EvaluateOptions
) -> None:
    n = 10 if 10 in options.ks else options.ks[0]
    report.md(
        "## Prequential stream replay",
        "",
        f"Events replayed {'in a seeded shuffle' if data.timestamps is None else 'in time order'}"
        f" through the daemons' own window, retrain and fold-in code; before each event is "
        f"learned, the user's top-{n} is asked for (fresh events since the last retrain "
        f"folded in, as the server does) and a hit recorded if the event's item is in it. "
        f"ALS: {params_text(params)}.",
        "",
    )
    rows, results = [], []
    total = len(data) * len(options.windows) * len(options.retrain_every)
    with tqdm(total=total, desc="prequential", unit="ev", disable=not options.progress) as bar:
        for window in options.windows:
            for every in options.retrain_every:
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
        for every in options.retrain_every:
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


def _seed(report: Report, data: Interactions, options: EvaluateOptions) -> None:
    from . import seed_protocol

    cv_users, test_users = seed_protocol_split(data)
    grid = default_grid(options.seed)
    report.md("## The seed's protocol", "", (seed_protocol.__doc__ or "").split("\n\n", 1)[1], "")
    with tqdm(total=len(grid) * 5, desc="seed protocol: CV", disable=not options.progress) as bar:
        cv = cross_validate(data, cv_users, grid, seed=options.seed, progress=lambda: bar.update(1))
    report.table(
        ["ALS setting (5-fold CV on the first users)", "mean F-measure"],
        [[params_text(p), f] for p, f in cv],
    )
    best = max(cv, key=lambda pf: pf[1])[0]
    models = [*_baselines(), AlsModel(best, name="ALS, best in CV")]
    rows = []
    for model in tqdm(models, desc="seed protocol: test", disable=not options.progress):
        s = score_seed(model, data, test_users, seed=options.seed)
        rows.append([model.name, s.accuracy, s.precision, s.recall, s.f_measure, s.users])
    report.table(["model", "accuracy", "precision@10", "recall", "F-measure", "test users"], rows)
    report.json["seed_protocol"] = {
        "cv": [{"params": p, "f_measure": f} for p, f in cv],
        "test": [
            dict(
                zip(
                    ["model", "accuracy", "precision", "recall", "f_measure", "users"],
                    r,
                    strict=True,
                )
            )
            for r in rows
        ],
    }


def run_evaluation(options: EvaluateOptions) -> Path:
    """Run everything asked for; returns the path of the Markdown report."""
    data = read_interactions(options.data_file, min_rating=options.min_rating)
    if options.ratings is not None:
        data = with_rating_scale(data, RatingScale.parse(options.ratings))
    report = Report(
        output_dir=options.output_dir, plots=options.plots, data_file=options.data_file,
        seed=options.seed, data=data,
    )  # fmt: skip
    report.md(
        f"# Evaluation of {data.source}",
        "",
        f"{len(data):,} events, {data.n_users:,} users, {data.n_items:,} items; metrics at "
        f"k = {', '.join(map(str, options.ks))}; seed {options.seed}. Definitions: "
        "`recommender/evaluation/metrics.py`.",
        "",
    )
    tuned: AlsParams | None = None
    for protocol in options.protocols:
        if protocol == "temporal":
            split = per_user_holdout(data, fraction=options.test_fraction, seed=options.seed)
            tuned = _offline(report, split, "Per-user holdout", options.ks, options)
        elif protocol == "global":
            split = global_cutoff(data, quantile=options.cutoff)
            trained_users = set(split.train.users.tolist())
            cold = {u for u in truth_sets(split) if u not in trained_users}
            note = (
                f"{len(cold):,} of these test users have no training event (cold start): every "
                "model answers them with the popularity fallback, as the server does."
            )
            _offline(report, split, "Global time cut-off", options.ks, options, note)
        elif protocol == "prequential":
            _prequential(report, data, tuned or AlsParams(random_seed=options.seed), options)
        elif protocol == "seed":
            _seed(report, data, options)
    report.write()
    return options.output_dir / "report.md"
