"""``recommender evaluate``: run the chosen protocols and write a Markdown/JSON report and plots."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import RecommenderError
from ..models import FAMILIES, Setting
from ..models.als_training import AlsParams
from ..ratings import RatingScale
from .daemon import daemon_settings, window_events
from .data import Interactions, read_interactions, with_rating_scale
from .exposures import exposure_figures, figures_markdown
from .families import LABELS, best_family_sentence, family_models, train_sequences
from .headline import Headline, compare_with_strongest
from .models import SEED_ALS, AlsModel, FamilyModel, ItemKnn, Popularity, Recommender
from .offline import ModelResult, evaluate_model, search_als
from .options import LAST_NOTE, PROTOCOLS, TITLES, EvaluateOptions, Protocol
from .preconditions import check_options, plan_protocols
from .prequential_section import prequential_section
from .ranked import RankedModel, ranked_sentence
from .report import Report, draw_models, params_text, setting_text
from .seed_protocol import cross_validate, default_grid, score_seed, seed_protocol_split
from .splits import Split, global_cutoff, leave_last_out, per_user_holdout, truth_sets

__all__ = ["PROTOCOLS", "EvaluateOptions", "Evaluation", "Protocol", "run_evaluation"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Where the report is, and which asked-for protocols ran, were skipped or failed (with
    why)."""

    report: Path
    ran: list[Protocol]
    skipped: dict[Protocol, str]
    failed: dict[Protocol, str]


def _baselines() -> list[Recommender]:
    return [
        Popularity(),
        ItemKnn("cosine"),
        ItemKnn("bm25"),
        AlsModel(SEED_ALS, name="ALS, seed settings"),
        AlsModel(AlsParams(), name="ALS, our defaults"),
    ]


def _against(score: float, reference: float, how: str) -> str:
    if reference <= 0:
        return f"{how}: scores 0"
    return f"{score / reference:.2f}x {how}"


def _offline(
    report: Report,
    split: Split,
    name: str,
    options: EvaluateOptions,
    note: str = "",
) -> AlsParams:
    """Baselines and tuned ALS on one split; returns the tuned settings."""
    ks, k0 = options.ks, options.k0
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
        return evaluate_model(AlsModel(params), validation, [k0], binary=binary).metrics[k0]["ndcg"]

    events = len(split.train)
    family_budget = options.budget("family", events)
    daemon_budget = options.budget("daemon", events)
    best, trials = search_als(
        split.train,
        budget_seconds=options.budget("search", events),
        seed=options.seed,
        fit_and_score=scored,
    )
    bar.close()
    baselines = _baselines()
    families, family_notes = (
        family_models(split.train, budget_seconds=family_budget, binary=binary, seed=options.seed)
        if family_budget > 0
        else ([], [])
    )
    daemon: FamilyModel | None = None
    daemon_note = ""
    if daemon_budget > 0:
        served, outcome = daemon_settings(
            split.train,
            budget_seconds=daemon_budget,
            binary=binary,
            seed=options.seed,
            families=tuple(FAMILIES),
        )
        daemon = FamilyModel(
            served,
            name=f"{LABELS[served.family]}, what the daemon serves "
            f"(self-tuned {daemon_budget:g} s)",
            sequences=train_sequences(split.train, seed=options.seed),
        )
        daemon_note = (
            f"The daemon's row is what the builder serves after its first tuning session on the "
            f"training events, every family searched ({len(outcome.trials)} trials in "
            f"{outcome.seconds:.0f} s; "
            f"{'adopted ' + setting_text(served) if outcome.adopted else 'kept its defaults'}: "
            f"{outcome.reason})."
        )
    ranked: RankedModel | None = None
    if options.ranker:
        first = daemon.setting if daemon is not None else Setting("als", best.to_dict())
        ranked = RankedModel(
            first,
            window_events(split.train, binary=binary, seed=options.seed),
            train_sequences(split.train, seed=options.seed),
            name=f"{daemon.name if daemon is not None else 'ALS, tuned'} + learned ranker",
            seed=options.seed,
        )
    models: list[Recommender] = [
        *baselines,
        *families,
        *([daemon] if daemon is not None else []),
        *([ranked] if ranked is not None else []),
        AlsModel(best, name="ALS, tuned on validation"),
    ]
    results: list[ModelResult] = []
    # precision@1 too where a ranker is judged: re-ranking gains and losses show at the top
    scored_ks = sorted({*ks, 1}) if ranked is not None else ks
    for model in tqdm(models, desc=f"{name}: models", disable=not options.progress):
        results.append(evaluate_model(model, split, scored_ks, binary=binary))
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
    ndcg = {m.name: r.metrics[k0]["ndcg"] for m, r in zip(models, results, strict=True)}
    by_model = dict(zip(map(id, models), results, strict=True))
    tuned = results[-1]
    baselines_scored = [by_model[id(m)] for m in baselines if not isinstance(m, AlsModel)]
    headline = compare_with_strongest(
        tuned, baselines_scored, k0, label="tuned ALS", seed=options.seed
    )
    report.md(
        headline.text(),
        "",
        f"Tuned ALS: {params_text(best)}; best of {len(trials)} trials scored on a validation "
        f"split carved from the training events only; NDCG@{k0} "
        f"{_against(ndcg[tuned.name], ndcg['popularity'], 'popularity')} and "
        f"{_against(ndcg[tuned.name], ndcg['ALS, seed settings'], 'the seed settings')}.",
        "",
    )
    report.summary.append(headline.text(lead=f"**{name}**"))
    if families or family_notes:
        report.md(
            "Each family's row is its best setting after a "
            f"{family_budget:g} s self-tuning session on a validation split carved from "
            "the training events (each user's newest fifth), its defaults where none was better "
            "beyond the noise. " + " ".join(family_notes),
            "",
        )
    if ranked is not None:
        first_row = daemon if daemon is not None else models[-1]
        report.md(ranked_sentence(ranked, by_model, first_row, k0, seed=options.seed), "")
    if daemon is not None:
        learnt = [tuned, *(by_model[id(m)] for m in families)]
        report.md(
            daemon_note,
            "",
            best_family_sentence(by_model[id(daemon)], learnt, k0, seed=options.seed),
            "",
        )

    report.plot(
        f"ndcg_vs_k_{name.split()[0].lower()}.png",
        lambda ax: draw_models(
            ax, {r.name: [r.metrics[k]["ndcg"] for k in ks] for r in results}, ks, name
        ),
    )
    report.json[name] = {
        "split": split.description,
        "models": [r.summary() for r in results],
        "headline": headline.to_dict(),
        "search": [
            {"params": t.params, "validation_ndcg": t.ndcg, "seconds": t.seconds} for t in trials
        ],
        "tuned": best,
    }
    return best


def _seed(report: Report, rated: Interactions, options: EvaluateOptions) -> None:
    from . import seed_protocol

    cv_users, test_users = seed_protocol_split(rated)
    grid = default_grid(options.seed)
    report.md(f"## {TITLES['seed']}", "", (seed_protocol.__doc__ or "").split("\n\n", 1)[1], "")
    if options.ratings is not None:
        report.md("It judges the file's own ratings, not the weights `--ratings` maps them to.", "")
    with tqdm(total=len(grid) * 5, desc="seed protocol: CV", disable=not options.progress) as bar:
        cv = cross_validate(
            rated, cv_users, grid, seed=options.seed, progress=lambda: bar.update(1)
        )
    report.table(
        ["ALS setting (5-fold CV on the first users)", "mean F-measure"],
        [[params_text(p), f] for p, f in cv],
    )
    best = max(cv, key=lambda pf: pf[1])[0]
    models = [*_baselines(), AlsModel(best, name="ALS, best in CV")]
    rows, scores = [], []
    for model in tqdm(models, desc="seed protocol: test", disable=not options.progress):
        s = score_seed(model, rated, test_users, seed=options.seed)
        scores.append(s)
        rows.append([model.name, s.accuracy, s.precision, s.recall, s.f_measure, s.users])
    report.table(["model", "accuracy", "precision@10", "recall", "F-measure", "test users"], rows)
    strongest = max(
        (i for i, m in enumerate(models) if not isinstance(m, AlsModel)),
        key=lambda i: scores[i].f_measure,
    )
    headline = Headline(
        metric="F-measure",
        candidate="ALS (best in CV)",
        baseline=models[strongest].name,
        candidate_score=scores[-1].f_measure,
        baseline_score=scores[strongest].f_measure,
        users=scores[-1].users,
    )
    report.md(
        headline.text(),
        "",
        "(No interval: the F-measure comes from totals over users, not a mean of per-user "
        "scores, so the paired bootstrap over users does not apply.)",
        "",
    )
    report.summary.append(headline.text(lead=f"**{TITLES['seed']}**"))
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
        "headline": headline.to_dict(),
    }


def _read(options: EvaluateOptions) -> tuple[Interactions, Interactions]:
    """(the events as the models learn them, the same events with the file's own ratings)."""
    try:
        rated = read_interactions(options.data_file, min_rating=options.min_rating)
    except ValueError as exc:  # an empty or malformed file: a one-line error, not a traceback
        where = str(options.data_file)
        raise RecommenderError(str(exc) if where in str(exc) else f"{where}: {exc}") from None
    if options.ratings is None:
        return rated, rated
    scale = RatingScale.parse(options.ratings)
    return with_rating_scale(rated, scale), rated.subset(scale.weights(rated.weights)[1])


def _run(
    protocol: Protocol,
    report: Report,
    data: Interactions,
    rated: Interactions,
    options: EvaluateOptions,
    tuned: AlsParams | None,
) -> AlsParams | None:
    """Run one protocol into ``report``; returns the per-user holdout's tuned settings (which
    the prequential replay then uses), else ``tuned`` unchanged."""
    if protocol == "temporal":
        split = per_user_holdout(data, fraction=options.test_fraction, seed=options.seed)
        return _offline(report, split, TITLES["temporal"], options)
    if protocol == "last":
        split = leave_last_out(data, seed=options.seed)
        _offline(report, split, TITLES["last"], options, LAST_NOTE)
    elif protocol == "global":
        split = global_cutoff(data, quantile=options.cutoff)
        trained_users = set(split.train.users.tolist())
        cold = {u for u in truth_sets(split) if u not in trained_users}
        note = (
            f"{len(cold):,} of these test users have no training event (cold start): every "
            "model answers them with the popularity fallback, as the server does."
        )
        _offline(report, split, TITLES["global"], options, note)
    elif protocol == "prequential":
        prequential_section(report, data, tuned or AlsParams(random_seed=options.seed), options)
    else:
        _seed(report, rated, options)
    return tuned


def run_evaluation(options: EvaluateOptions) -> Evaluation:
    """Run every asked-for protocol that the data allows, writing the report after each.

    Raises
    ------
    ConfigError
        An option is out of range.
    RecommenderError
        The file cannot be read, or no asked-for protocol can run on it (nothing is written).
    """
    check_options(options)
    data, rated = _read(options)
    if options.exposures is not None and not options.protocols:
        return _exposures_only(options, data)
    plan = plan_protocols(data, rated, options)  # before any long computation
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
    report.summary_here()
    for protocol, reason in plan.skipped.items():
        log.warning("not running the %s protocol: %s", protocol, reason)
        report.summary.append(f"**{TITLES[protocol]}** (`{protocol}`): not run: {reason}.")
    ran: list[Protocol] = []
    failed: dict[Protocol, str] = {}

    def record() -> None:
        report.json["protocols"] = {"ran": ran, "skipped": plan.skipped, "failed": failed}
        report.write()

    tuned: AlsParams | None = None
    for protocol in plan.runnable:
        mark = report.mark()
        try:
            tuned = _run(protocol, report, data, rated, options, tuned)
        except KeyboardInterrupt:
            _abandon(report, mark, protocol, "interrupted")
            record()
            raise
        except Exception as exc:  # the other protocols' results must still be written
            log.exception("the %s protocol failed", protocol)
            failed[protocol] = f"{type(exc).__name__}: {exc}"
            _abandon(report, mark, protocol, f"failed ({failed[protocol]})")
        else:
            ran.append(protocol)
        record()
    return Evaluation(options.output_dir / "report.md", ran, plan.skipped, failed)


def _exposures_only(options: EvaluateOptions, data: Interactions) -> Evaluation:
    """``--exposures FILE`` alone: the online figures of an exposure log and the data file."""
    assert options.exposures is not None
    figures = exposure_figures(data, options.exposures, window_seconds=options.attribution_window)
    report = Report(
        output_dir=options.output_dir, plots=False, data_file=options.data_file,
        seed=options.seed, data=data,
    )  # fmt: skip
    report.md(f"# Online figures of {data.source} and {options.exposures}", "")
    report.md(*figures_markdown(figures))
    report.json["online"] = figures
    report.write()
    return Evaluation(options.output_dir / "report.md", [], {}, {})


def _abandon(report: Report, mark: tuple[int, int], protocol: Protocol, what: str) -> None:
    """Replace a half-written section by a line saying what happened to it."""
    report.discard_from(mark)
    report.md(f"## {TITLES[protocol]}", "", f"Not completed: {what}.", "")
    report.summary.append(f"**{TITLES[protocol]}** (`{protocol}`): not completed: {what}.")
