"""The ``recommender build`` command's options."""

from __future__ import annotations

import argparse

from .options import (
    add_common,
    add_kafka,
    add_model_dir,
    byte_size,
    duration,
    model_setting,
    optional_duration,
    positive_float,
    quality_drop,
)

__all__ = ["build_parser_for_builder"]


def _family_names() -> list[str]:
    from ..models import FAMILIES

    return sorted(FAMILIES)


def build_parser_for_builder(parser: argparse.ArgumentParser) -> None:
    from ..models.als_training import AlsParams

    parser.add_argument("topic", metavar="TOPIC", help="the interactions topic")
    parser.add_argument(
        "retrain_every",
        metavar="RETRAIN_FREQUENCY",
        type=int,
        help="retrain after this many new events (0: only on --retrain-interval)",
    )
    parser.add_argument(
        "window_events", metavar="WINDOW_LENGTH", type=int, help="keep the latest N events"
    )
    parser.add_argument(
        "-b",
        "--from-beginning",
        action="store_true",
        help="with no snapshot yet, read the topic from the beginning (default: from the end)",
    )
    online = parser.add_argument_group("the online loop (live quality, experiments)")
    online.add_argument(
        "--exposures-topic",
        default="recommendations",
        help="the servers' exposures topic; the builder joins it with the interactions and "
        "publishes live quality (default recommendations; off: no live quality)",
    )
    online.add_argument(
        "--attribution-window",
        type=duration,
        default=1800.0,
        help="attribute an interaction to an exposure at most this old (default 30m)",
    )
    online.add_argument(
        "--experiments-topic",
        default="experiments",
        help="where experiments are started and stopped (default experiments; off)",
    )
    parser.add_argument(
        "--lock-ttl",
        type=duration,
        default=60.0,
        help="the store's writer lock is refreshed every sixth of this and may be taken over by "
        "another builder once not refreshed for this long (default 60s); this builder stops "
        "publishing after half of it without a refresh",
    )
    parser.add_argument(
        "--partial-models",
        action="store_true",
        help="publish models while the backlog found at start is still being read (marked "
        "partial, never held against a model of the whole backlog); default: the first "
        "publication waits until every partition is read up to where it ended at start",
    )
    parser.add_argument(
        "--window-seconds",
        type=positive_float,
        help="also drop events older than this (by record timestamp, relative to the newest)",
    )
    parser.add_argument(
        "--half-life",
        type=duration,
        metavar="DURATION",
        help="decay event weights by half every DURATION of event time, e.g. 7d, 12h, 3600 "
        "(seconds); default: no decay",
    )
    parser.add_argument(
        "--ratings",
        metavar="LOW..HIGH[:LIKE:DISLIKE]",
        help="weights are ratings on this scale, e.g. 1..5 (4-5 likes, 3 neutral, 1-2 "
        "dislikes) or 1..10:7:4; see docs/reference/events.md",
    )
    parser.add_argument(
        "--retrain-interval",
        type=positive_float,
        help="also retrain every S seconds when anything new arrived",
    )
    add_model_dir(parser)
    parser.add_argument("--keep", type=int, default=3, help="snapshots to keep (default 3)")
    parser.add_argument("--dead-letter-topic", help="copy malformed events here, raw")
    gate = parser.add_argument_group("quality gate")
    gate.add_argument(
        "--max-quality-drop",
        type=quality_drop,
        default=0.2,
        metavar="FRACTION|off",
        help="refuse a model whose NDCG@10 on events the serving model has not seen is "
        "significantly lower, by more than this fraction (default 0.2; off disables the gate)",
    )
    gate.add_argument(
        "--gate-holdout",
        type=float,
        default=0.1,
        help="most of the window held out to judge on, as a fraction (default 0.1)",
    )
    gate.add_argument(
        "--gate-min-events",
        type=int,
        default=200,
        help="below this many held-out events the gate abstains (default 200)",
    )
    gate.add_argument(
        "--gate-min-users",
        type=int,
        default=50,
        help="below this many held-out users the gate abstains (default 50)",
    )
    gate.add_argument(
        "--gate-retry",
        type=duration,
        metavar="DURATION",
        help="after a refusal, retry this long after even with no new events "
        "(default: --retrain-interval, else 60s)",
    )
    gate.add_argument(
        "--max-model-age",
        type=optional_duration,
        default=6 * 3600.0,
        metavar="DURATION|off",
        help="replace a serving model older than this even if the gate refuses (default 6h)",
    )
    tuning = parser.add_argument_group("self-tuning")
    tuning.add_argument(
        "--tune",
        choices=["on", "off"],
        default="on",
        help="search model families and their settings on the window in the background (default "
        "on; --model pins the family); explicit "
        "--factors/--regularization/--alpha/--iterations are left as given",
    )
    tuning.add_argument(
        "--tune-budget",
        type=duration,
        default=90.0,
        metavar="DURATION",
        help="search time of one core for the first session (default 90s; re-tunes get half)",
    )
    tuning.add_argument(
        "--ranker",
        choices=["auto", "on", "off"],
        default="auto",
        help="a learned ranking stage (LightGBM over the family's top 200 items with item and "
        "user features), trained every --ranker-interval on a time split of the window: auto "
        "serves it only where it beats the family's own order beyond the noise (default auto)",
    )
    tuning.add_argument(
        "--ranker-interval",
        type=duration,
        default=600.0,
        metavar="DURATION",
        help="train the ranker again after this long (default 10m); retrains between reuse it",
    )
    tuning.add_argument(
        "--items-topic",
        help="topic of JSON item records (the server's --items-topic): their categories, "
        "labels and numeric attributes become the ranker's item features (default: none)",
    )
    tuning.add_argument(
        "--retune-every",
        type=int,
        default=50,
        help="tune again after this many publications (default 50) ...",
    )
    tuning.add_argument(
        "--retune-interval",
        type=duration,
        default=3600.0,
        metavar="DURATION",
        help="... or this long after the last session, whichever comes first (default 1h)",
    )
    parser.add_argument(
        "--model-memory",
        type=byte_size,
        default=8 << 30,
        metavar="SIZE",
        help="the most memory one fit may take (default 8GiB): self-tuning leaves out a family "
        "that would need more on this window (EASE's items x items matrix, say), and a retrain "
        "with such a family falls back to ALS, saying so",
    )
    parser.add_argument(
        "--model",
        default="auto",
        metavar="auto|FAMILY",
        help="the model family: auto (default: start with ALS, and let self-tuning choose a "
        "family on evidence) or one of " + ", ".join(_family_names()) + " (pinned)",
    )
    parser.add_argument(
        "--model-setting",
        action="append",
        type=model_setting,
        default=[],
        metavar="NAME=VALUE",
        help="pin one setting of a family other than ALS (repeatable), e.g. ease_lambda=200, "
        "knn_weighting=bm25, sequence_steps=3, ease_binary=false; used whenever that family "
        "is, never tuned",
    )
    als = parser.add_argument_group(
        "ALS (given explicitly: pinned, tuning leaves them alone and searches ALS only)"
    )
    defaults = AlsParams()
    als.add_argument("--factors", type=int, help=f"default {defaults.factors}")
    als.add_argument("--regularization", type=float, help=f"default {defaults.regularization:g}")
    als.add_argument(
        "--alpha", type=float, help=f"confidence = alpha * weight (default {defaults.alpha:g})"
    )
    als.add_argument("--iterations", type=int, help=f"default {defaults.iterations}")
    als.add_argument("--seed", type=int, default=42, help="random seed of the initial factors")
    als.add_argument(
        "--device",
        choices=["auto", "cpu", "gpu"],
        default="auto",
        help="fit ALS on the GPU when implicit can use one (auto, the default), or force cpu / "
        "gpu; self-tuning always uses one CPU core",
    )
    add_kafka(parser)
    add_common(parser)
