"""The ``recommender`` command: build, serve, broker, demo."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .datasets.command import add_datasets_command
from .errors import RecommenderError, one_line
from .kafka import KafkaSettings
from .logs import configure_logging
from .options import (
    add_common,
    add_kafka,
    add_model_dir,
    build_parser_for_builder,
    build_parser_for_server,
    duration_list,
    int_list,
    port_number,
)

__all__ = ["main"]

log = logging.getLogger("recommender")


def _store(args: argparse.Namespace) -> Any:
    from .kafka import parse_overrides
    from .store import open_store

    try:
        options = parse_overrides(args.store_options)
    except RecommenderError as exc:
        raise RecommenderError(str(exc).replace("-X", "--store-option")) from None
    return open_store(args.model_dir, options=options, cache_dir=args.cache_dir)


def _kafka_settings(args: argparse.Namespace) -> KafkaSettings:
    return KafkaSettings.from_options(
        args.bootstrap_servers, args.kafka_overrides, args.kafka_config
    )


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_build(args: argparse.Namespace) -> int:
    from .builder import BuilderConfig, ModelBuilder
    from .training import AlsParams, resolve_device

    given = {
        name: getattr(args, name)
        for name in ("factors", "regularization", "alpha", "iterations")
        if getattr(args, name) is not None
    }
    try:
        params = AlsParams(**given, random_seed=args.seed)
    except ValueError as exc:
        raise RecommenderError(str(exc)) from exc
    from .ratings import RatingScale

    config = BuilderConfig(
        topic=args.topic,
        retrain_every=args.retrain_every,
        window_events=args.window_events,
        window_seconds=args.window_seconds,
        half_life_seconds=args.half_life,
        ratings=None if args.ratings is None else RatingScale.parse(args.ratings),
        retrain_interval=args.retrain_interval,
        from_beginning=args.from_beginning,
        partial_models=args.partial_models,
        store=_store(args),
        keep=args.keep,
        lock_ttl=args.lock_ttl,
        params=params,
        model=args.model,
        model_memory=args.model_memory,
        dead_letter_topic=args.dead_letter_topic,
        pinned=frozenset(given),
        device=resolve_device(args.device),
        tune=args.tune == "on",
        tune_budget=args.tune_budget,
        retune_every=args.retune_every,
        retune_interval=args.retune_interval,
        max_quality_drop=args.max_quality_drop,
        gate_holdout=args.gate_holdout,
        gate_min_users=args.gate_min_users,
        gate_retry=args.gate_retry,
        max_model_age=args.max_model_age,
        gate_min_events=args.gate_min_events,
    )
    stop = threading.Event()
    _stop_on_signals(stop)
    ModelBuilder(config, _kafka_settings(args)).run(stop)
    log.info("builder stopped")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from .server import ServerConfig, run_server
    from .store import LocalStore

    store = _store(args)  # a bad location is an error now, not in every worker later
    if isinstance(store, LocalStore) and not store.root.is_dir():
        raise RecommenderError(
            f"--model-dir {store.location}: no such directory; start the builder first (it "
            "creates it), or fix the path"
        )
    try:
        store.versions()
    except Exception as exc:
        raise RecommenderError(
            f"cannot read the snapshot store {store.location}: {one_line(exc)}; check "
            "--model-dir, the credentials and that the store is reachable"
        ) from None
    poll = args.poll_interval or (0.25 if isinstance(store, LocalStore) else 2.0)
    if args.max_n < 1 or args.workers < 1:
        raise RecommenderError("--max-n and --workers must be at least 1")
    if args.require_token_for_reads and not args.api_token:
        raise RecommenderError("--require-token-for-reads needs --api-token")
    wants_kafka = args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if (args.enable_ingest or args.items_topic) and not wants_kafka:
        raise RecommenderError("--enable-ingest and --items-topic need --bootstrap-servers")
    run_server(
        ServerConfig(
            model_dir=args.model_dir,
            store_options=tuple(args.store_options),
            cache_dir=args.cache_dir,
            host=args.host,
            port=args.port,
            max_n=args.max_n,
            poll_interval=poll,
            kafka=_kafka_settings(args) if wants_kafka else None,
            topic=args.topic,
            items_topic=args.items_topic,
            catalog_only=args.catalog_only,
            fresh_memory=args.fresh_memory,
            chat_memory=args.chat_memory,
            max_fresh_users=args.max_fresh_users,
            max_fresh_per_user=args.max_fresh_per_user,
            enable_ingest=args.enable_ingest,
            api_token=args.api_token,
            require_token_for_reads=args.require_token_for_reads,
            workers=args.workers,
            batch_window=args.batch_window / 1000,
            ann_threshold=args.ann_threshold,
            ann_ef=args.ann_ef,
            exact=args.exact,
            min_ratings=args.min_ratings,
            log_level=args.log_level,
            log_format=args.log_format,
        )
    )
    return 0


def run_broker(args: argparse.Namespace) -> int:
    from .broker import EmbeddedBroker

    stop = threading.Event()
    _stop_on_signals(stop)
    with EmbeddedBroker(port=args.port, host=args.host, storage=args.storage) as broker:
        print(
            f"broker ready: --bootstrap-servers {broker.bootstrap_servers} "
            f"(storage: {args.storage})",
            flush=True,
        )
        while not stop.is_set():
            stop.wait(0.5)
    return 0


def run_status(args: argparse.Namespace) -> int:
    from .status import render_status

    wants_kafka = args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    print(
        render_status(
            _store(args),
            kafka=_kafka_settings(args) if wants_kafka else None,
            server=args.server,
        )
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import EvaluateOptions, run_evaluation
    from .evaluation.run import PROTOCOLS

    if not args.data_file.is_file():
        raise RecommenderError(f"{args.data_file}: no such file")
    protocols = list(PROTOCOLS) if "all" in args.protocol else args.protocol
    outcome = run_evaluation(
        EvaluateOptions(
            data_file=args.data_file,
            output_dir=args.output_dir,
            protocols=protocols or ["temporal"],
            ks=args.k,
            min_rating=args.min_rating,
            ratings=args.ratings,
            test_fraction=args.test_fraction,
            cutoff=args.cutoff,
            search_budget=args.search_budget,
            daemon_budget=args.daemon_budget,
            windows=args.windows,
            retrain_every=args.retrain_every,
            half_lives=args.half_lives,
            seed=args.seed,
            plots=not args.no_plots,
            progress=not args.no_progress,
        )
    )
    print(f"report: {outcome.report}")
    if outcome.failed:
        log.error(
            "failed: %s (the report has the others)",
            "; ".join(f"{p}: {why}" for p, why in outcome.failed.items()),
        )
        return 1
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from .demo import DemoOptions
    from .demo import run_demo as demo

    return demo(
        DemoOptions(
            port=args.port,
            broker_port=args.broker_port,
            workdir=args.workdir,
            rate=args.rate,
            dataset=args.dataset,
        )
    )


def run_bot_command(args: argparse.Namespace) -> int:
    from .bot import BotSettings, run_bot

    token = args.token or os.environ.get("TELEGRAM_BOT_TOKEN")
    if not token:
        raise RecommenderError("give the bot's token: --token or $TELEGRAM_BOT_TOKEN (BotFather)")
    run_bot(
        BotSettings(
            token=token,
            server_url=args.server,
            api_token=args.api_token,
            telegram_url=args.telegram_url,
        )
    )
    return 0


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
        choices=["temporal", "global", "prequential", "seed", "all"],
        help="repeatable; default temporal (per-user holdout, last 20%% by time)",
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
        default=60.0,
        help="seconds for the ALS hyper-parameter search",
    )
    evaluate.add_argument(
        "--daemon-budget",
        type=float,
        default=90.0,
        help="self-tuning seconds for the 'what the daemon serves' row (0: no such row)",
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
    add_common(demo)
    demo.set_defaults(run=run_demo)

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
