"""The ``recommender`` command: build, serve, broker, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..datasets.command import add_datasets_command
from ..errors import RecommenderError
from ..logs import configure_logging
from .builder_options import build_parser_for_builder
from .commands import (
    run_bot_command,
    run_broker,
    run_build,
    run_demo,
    run_evaluate,
    run_serve,
    run_status,
)
from .experiment import add_experiment_command
from .options import (
    add_common,
    add_kafka,
    add_model_dir,
    duration,
    duration_list,
    int_list,
    port_number,
)
from .server_options import build_parser_for_server

__all__ = ["main"]

log = logging.getLogger("recommender")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recommender",
        description="Streaming recommendations: Kafka events -> sliding-window ALS -> HTTP.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="run the model builder")
    build_parser_for_builder(build)
    build.set_defaults(run=run_build)

    serve = commands.add_parser("serve", help="run the HTTP server")
    build_parser_for_server(serve)
    serve.set_defaults(run=run_serve)

    broker = commands.add_parser("broker", help="run the embedded Kafka-protocol broker")
    broker.add_argument("--port", type=port_number, default=9092)
    broker.add_argument("--host", default="127.0.0.1")
    broker.add_argument(
        "--storage",
        default="memory",
        help="memory (default: a restart loses every topic), or s3://bucket/ to keep topics and "
        "offsets in an S3-compatible store across restarts (endpoint and keys from AWS_*)",
    )
    add_common(broker)
    broker.set_defaults(run=run_broker)

    status = commands.add_parser(
        "status", help="the newest snapshot, the builder's counters and lag, the server's state"
    )
    add_model_dir(status)
    status.add_argument("--server", help="a server's base URL, e.g. http://127.0.0.1:8000")
    add_kafka(status)
    add_common(status)
    status.set_defaults(run=run_status)

    evaluate = commands.add_parser(
        "evaluate", help="measure recommendation quality on a data file (report, JSON, plots)"
    )
    evaluate.add_argument(
        "data_file",
        type=Path,
        metavar="DATA_FILE",
        help="ratings.csv, an anime .dat file, or user,item[,weight[,time]] CSV",
    )
    evaluate.add_argument("--output-dir", type=Path, required=True)
    evaluate.add_argument(
        "--protocol",
        action="append",
        default=[],
        choices=["temporal", "last", "global", "prequential", "seed", "all"],
        help="repeatable; default temporal (per-user holdout, last 20%% by time); last: "
        "leave-last-out by time (each user's newest like, where order matters)",
    )
    evaluate.add_argument("--k", type=int_list, default=[10], help="e.g. 5,10,20 (default 10)")
    evaluate.add_argument("--min-rating", type=float, help="only ratings >= this are positives")
    evaluate.add_argument(
        "--ratings",
        metavar="LOW..HIGH[:LIKE:DISLIKE]",
        help="read weights as ratings on this scale (likes, neutral, dislikes), as the builder's "
        "--ratings does; only liked held-out items count as hits",
    )
    evaluate.add_argument("--test-fraction", type=float, default=0.2)
    evaluate.add_argument("--cutoff", type=float, default=0.9, help="global cut-off quantile")
    evaluate.add_argument(
        "--search-budget",
        type=float,
        help="seconds for the ALS hyper-parameter search (default: 10-60, grown with the "
        "training events: a second per 1,000)",
    )
    evaluate.add_argument(
        "--daemon-budget",
        type=float,
        help="self-tuning seconds for the 'what the daemon serves' row (0: no such row; "
        "default 15-90, a second per 700 training events)",
    )
    evaluate.add_argument(
        "--family-budget",
        type=float,
        help="self-tuning seconds for each model family's row (EASE, RP3beta, item-kNN, "
        "sequence; 0: no family rows; default 5-20, a second per 4,000 training events)",
    )
    evaluate.add_argument(
        "--ranker",
        choices=["on", "off"],
        default="on",
        help="a row for the learned ranking stage over the daemon's family (default on)",
    )
    evaluate.add_argument(
        "--quick",
        action="store_true",
        help="a first look: every default budget a quarter as long",
    )
    evaluate.add_argument(
        "--windows",
        type=int_list,
        default=[5000, 20000, 0],
        help="prequential window lengths (0: unbounded)",
    )
    evaluate.add_argument(
        "--retrain-every",
        type=int_list,
        default=[1000, 5000],
        help="prequential retrain frequencies (events)",
    )
    evaluate.add_argument(
        "--half-lives",
        type=duration_list,
        default=[],
        metavar="DURATIONS",
        help="also replay the best prequential setting with each half-life, e.g. 1d,7d,30d "
        "(the builder's --half-life; default: none)",
    )
    evaluate.add_argument(
        "--exposures",
        type=Path,
        metavar="FILE",
        help="an exposure log (the exposures topic's records, one JSON object a line): report "
        "the live-quality figures for it and DATA_FILE's interactions, as the monitor counts "
        "them (with no --protocol, only that)",
    )
    evaluate.add_argument(
        "--attribution-window", type=duration, default=1800.0, help="with --exposures (30m)"
    )
    evaluate.add_argument("--seed", type=int, default=42)
    evaluate.add_argument("--no-plots", action="store_true")
    evaluate.add_argument("--no-progress", action="store_true")
    add_common(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    bot = commands.add_parser("bot", help="run a Telegram bot against a recommender server")
    bot.add_argument("--token", help="the bot's token from BotFather (or $TELEGRAM_BOT_TOKEN)")
    bot.add_argument("--server", default="http://127.0.0.1:8000", help="the recommender server")
    bot.add_argument(
        "--api-token",
        default=os.environ.get("RECOMMENDER_API_TOKEN"),
        help="the server's bearer token, if it has one (default: $RECOMMENDER_API_TOKEN)",
    )
    bot.add_argument(
        "--telegram-url",
        default="https://api.telegram.org/bot",
        help="the Bot API's base URL (a local Bot API server, or a test double)",
    )
    add_common(bot)
    bot.set_defaults(run=run_bot_command)

    demo = commands.add_parser("demo", help="broker + builder + server + synthetic traffic")
    demo.add_argument("--port", type=port_number, default=8000, help="HTTP port (default 8000)")
    demo.add_argument("--broker-port", type=int, default=0, help="default: a free port")
    demo.add_argument("--workdir", type=Path, default=Path(".demo"), help="model dir and logs")
    demo.add_argument("--rate", type=float, default=2000.0, help="synthetic events per second")
    demo.add_argument(
        "--dataset",
        choices=["synthetic", "movielens", "anime"],
        default="synthetic",
        help="replay a data set from ../shared/datasets instead of synthetic traffic",
    )
    demo.add_argument(
        "--challenger",
        choices=["small-als", "ranker"],
        default="small-als",
        help="the live experiment's challenger (synthetic traffic): small-als, an untuned ALS of "
        "8 factors against the self-tuned champion (default); ranker, the same ALS with the "
        "learned ranking stage pinned on against it without one (the ranker's online proof)",
    )
    add_common(demo)
    demo.set_defaults(run=run_demo)

    add_experiment_command(commands)
    add_datasets_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        return int(args.run(args))
    except RecommenderError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 0


def entry(command: str) -> None:
    """Entry point of the top-level scripts: ``model_builder.py`` and ``server.py``."""
    started = time.monotonic()
    code = main([command, *sys.argv[1:]])
    log.debug("%s exited after %.1fs", command, time.monotonic() - started)
    sys.exit(code)
