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
from typing import Any, get_args

from . import __version__
from .errors import RecommenderError
from .kafka import KafkaSettings
from .logs import LogFormat, configure_logging

__all__ = ["main"]

log = logging.getLogger("recommender")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument(
        "--log-format", default="text", choices=get_args(LogFormat), help="text, or json lines"
    )


def _add_kafka(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Kafka")
    group.add_argument(
        "--bootstrap-servers",
        help="broker list (default: $KAFKA_BOOTSTRAP_SERVERS, else localhost:9092)",
    )
    group.add_argument(
        "-X",
        dest="kafka_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka property passed straight to every client (repeatable), "
        "e.g. -X security.protocol=SASL_SSL",
    )
    group.add_argument(
        "--kafka-config", type=Path, help="a .properties file of librdkafka settings"
    )


def _add_model_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-dir",
        default="model",
        help="where snapshots live: a directory (default ./model), or an object-store URL "
        "such as s3://bucket/prefix (also gs://, az://); credentials from AWS_* etc.",
    )
    parser.add_argument(
        "--store-option",
        dest="store_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="object-store client option (repeatable), e.g. region=eu-west-1 or allow_http=true",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where snapshots from an object store are downloaded "
        "(default ~/.cache/recommender/...)",
    )


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


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KIB": 1 << 10,
    "MIB": 1 << 20,
    "GIB": 1 << 30,
}


def byte_size(text: str) -> int:
    """``256MB``, ``1.5GiB``, ``100000`` (bytes) -> bytes."""
    number = text.strip().upper().rstrip()
    unit = number.lstrip("0123456789.")
    digits = number[: len(number) - len(unit)]
    try:
        value = float(digits) * _SIZE_UNITS[unit.strip()]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"expected a size such as 256MB or 2GiB, got {text!r}"
        ) from None
    if value < 64 << 10:
        raise argparse.ArgumentTypeError(f"at least 64KiB, got {text!r}")
    return int(value)


_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def duration(text: str) -> float:
    """``90``, ``30s``, ``15m``, ``12h``, ``7d``, ``2w`` -> seconds (positive)."""
    number = text.strip().lower()
    unit = number.lstrip("0123456789.")
    try:
        value = float(number[: len(number) - len(unit)]) * _DURATION_UNITS[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 90, 30s, 15m, 12h or 7d; got {text!r}"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _optional_duration(text: str) -> float | None:
    return None if text.strip().lower() == "off" else duration(text)


def _drop(text: str) -> float | None:
    if text.lower() == "off":
        return None
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to below 1, or off; got {text}")
    return value


def build_parser_for_builder(parser: argparse.ArgumentParser) -> None:
    from .training import AlsParams

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
    parser.add_argument(
        "--window-seconds",
        type=_positive_float,
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
        "dislikes) or 1..10:7:4; see README",
    )
    parser.add_argument(
        "--retrain-interval",
        type=_positive_float,
        help="also retrain every S seconds when anything new arrived",
    )
    _add_model_dir(parser)
    parser.add_argument("--keep", type=int, default=3, help="snapshots to keep (default 3)")
    parser.add_argument("--dead-letter-topic", help="copy malformed events here, raw")
    gate = parser.add_argument_group("quality gate")
    gate.add_argument(
        "--max-quality-drop",
        type=_drop,
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
        type=_optional_duration,
        default=6 * 3600.0,
        metavar="DURATION|off",
        help="replace a serving model older than this even if the gate refuses (default 6h)",
    )
    tuning = parser.add_argument_group("self-tuning")
    tuning.add_argument(
        "--tune",
        choices=["on", "off"],
        default="on",
        help="search ALS settings on the window in the background (default on); explicit "
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
    als = parser.add_argument_group("ALS (given explicitly: pinned, tuning leaves them alone)")
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
    _add_kafka(parser)
    _add_common(parser)


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
        store=_store(args),
        keep=args.keep,
        params=params,
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


def build_parser_for_server(parser: argparse.ArgumentParser) -> None:
    _add_model_dir(parser)
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-n", type=int, default=1000, help="largest n a client may ask for")
    parser.add_argument(
        "--poll-interval",
        type=_positive_float,
        help="seconds between snapshot checks (default 0.25 for a directory, 2 for an object "
        "store: every check is a LIST request)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes sharing the port (SO_REUSEPORT)"
    )
    topk = parser.add_argument_group("top-k search")
    topk.add_argument(
        "--ann-threshold",
        type=int,
        default=50_000,
        help="from this many items on, find top items with an HNSW graph instead of scoring "
        "every item (default 50000; recall@10 measured in BENCHMARKS.md)",
    )
    topk.add_argument(
        "--ann-ef",
        type=int,
        default=128,
        help="HNSW search breadth: higher is more exact and slower (default 128)",
    )
    topk.add_argument("--exact", action="store_true", help="always score every item")
    live = parser.add_argument_group(
        "real time (needs --bootstrap-servers or $KAFKA_BOOTSTRAP_SERVERS)"
    )
    live.add_argument("--topic", default="interactions", help="interactions topic to follow")
    live.add_argument("--items-topic", help="topic of JSON item metadata (e.g. items)")
    live.add_argument(
        "--catalog-only", action="store_true", help="recommend only items in the catalogue"
    )
    live.add_argument(
        "--fresh-memory",
        type=byte_size,
        default=256 << 20,
        metavar="SIZE",
        help="memory for fresh events, e.g. 256MB or 2GB (default 256MB): over it, the least "
        "recently active users' fresh events are dropped (counted in /metrics)",
    )
    live.add_argument(
        "--max-fresh-users", type=int, help="also bound the users with fresh events (LRU)"
    )
    live.add_argument(
        "--max-fresh-per-user", type=int, default=200, help="fresh events kept per user"
    )
    live.add_argument(
        "--enable-ingest", action="store_true", help="accept POST /interactions (produced to Kafka)"
    )
    live.add_argument(
        "--min-ratings",
        type=int,
        default=10,
        help="the seed chat API's POST /recommend answers nothing below this many ratings (10)",
    )
    security = parser.add_argument_group("security")
    security.add_argument(
        "--api-token",
        default=os.environ.get("RECOMMENDER_API_TOKEN"),
        help="bearer token required for writes (default: $RECOMMENDER_API_TOKEN)",
    )
    security.add_argument(
        "--require-token-for-reads",
        action="store_true",
        help="require the token for reads too (/health and /ready stay open)",
    )
    _add_kafka(parser)
    _add_common(parser)


def run_serve(args: argparse.Namespace) -> int:
    from .server import ServerConfig, run_server
    from .store import LocalStore

    store = _store(args)  # a bad location is an error now, not in every worker later
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
            max_fresh_users=args.max_fresh_users,
            max_fresh_per_user=args.max_fresh_per_user,
            enable_ingest=args.enable_ingest,
            api_token=args.api_token,
            require_token_for_reads=args.require_token_for_reads,
            workers=args.workers,
            ann_threshold=args.ann_threshold,
            ann_ef=args.ann_ef,
            exact=args.exact,
            min_ratings=args.min_ratings,
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


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected integers >= 0, got {text!r}")
    return values


def run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import EvaluateOptions, run_evaluation
    from .evaluation.run import PROTOCOLS

    if not args.data_file.is_file():
        raise RecommenderError(f"{args.data_file}: no such file")
    protocols = list(PROTOCOLS) if "all" in args.protocol else args.protocol
    report = run_evaluation(
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
            seed=args.seed,
            plots=not args.no_plots,
            progress=not args.no_progress,
        )
    )
    print(f"report: {report}")
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
    broker.add_argument("--port", type=int, default=9092)
    broker.add_argument("--host", default="127.0.0.1")
    broker.add_argument(
        "--storage",
        default="memory",
        help="memory (default: a restart loses every topic), or s3://bucket/ to keep topics and "
        "offsets in an S3-compatible store across restarts (endpoint and keys from AWS_*)",
    )
    _add_common(broker)
    broker.set_defaults(run=run_broker)

    status = commands.add_parser(
        "status", help="the newest snapshot, the builder's counters and lag, the server's state"
    )
    _add_model_dir(status)
    status.add_argument("--server", help="a server's base URL, e.g. http://127.0.0.1:8000")
    _add_kafka(status)
    _add_common(status)
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
    evaluate.add_argument("--k", type=_int_list, default=[10], help="e.g. 5,10,20 (default 10)")
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
        type=_int_list,
        default=[5000, 20000, 0],
        help="prequential window lengths (0: unbounded)",
    )
    evaluate.add_argument(
        "--retrain-every",
        type=_int_list,
        default=[1000, 5000],
        help="prequential retrain frequencies (events)",
    )
    evaluate.add_argument("--seed", type=int, default=42)
    evaluate.add_argument("--no-plots", action="store_true")
    evaluate.add_argument("--no-progress", action="store_true")
    _add_common(evaluate)
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
    _add_common(bot)
    bot.set_defaults(run=run_bot_command)

    demo = commands.add_parser("demo", help="broker + builder + server + synthetic traffic")
    demo.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    demo.add_argument("--broker-port", type=int, default=0, help="default: a free port")
    demo.add_argument("--workdir", type=Path, default=Path(".demo"), help="model dir and logs")
    demo.add_argument("--rate", type=float, default=2000.0, help="synthetic events per second")
    demo.add_argument(
        "--dataset",
        choices=["synthetic", "movielens", "anime"],
        default="synthetic",
        help="replay a data set from ../shared/datasets instead of synthetic traffic",
    )
    _add_common(demo)
    demo.set_defaults(run=run_demo)
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
