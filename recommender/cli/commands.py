"""What each ``recommender`` command does (the parsers are in :mod:`recommender.cli`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

from ..errors import RecommenderError, one_line

if TYPE_CHECKING:  # the command's own modules are imported when it runs: a quick --help
    from ..kafka import KafkaSettings

__all__ = [
    "run_bot_command",
    "run_broker",
    "run_build",
    "run_demo",
    "run_evaluate",
    "run_serve",
    "run_status",
]

log = logging.getLogger("recommender")


def _store(args: argparse.Namespace) -> Any:
    from ..kafka import parse_overrides
    from ..store import open_store

    try:
        options = parse_overrides(args.store_options)
    except RecommenderError as exc:
        raise RecommenderError(str(exc).replace("-X", "--store-option")) from None
    return open_store(args.model_dir, options=options, cache_dir=args.cache_dir)


def _topic_or_none(name: str) -> str | None:
    return None if name.strip().lower() == "off" else name


def _kafka_settings(args: argparse.Namespace) -> KafkaSettings:
    from ..kafka import KafkaSettings

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
    from ..builder import BuilderConfig, ModelBuilder
    from ..models import ALIASES
    from ..models.als_training import AlsParams, resolve_device

    given = {
        name: getattr(args, name)
        for name in ("factors", "regularization", "alpha", "iterations")
        if getattr(args, name) is not None
    }
    try:
        params = AlsParams(**given, random_seed=args.seed)
    except ValueError as exc:
        raise RecommenderError(str(exc)) from exc
    from ..ratings import RatingScale

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
        model=ALIASES.get(args.model, args.model),
        model_memory=args.model_memory,
        exposures_topic=_topic_or_none(args.exposures_topic),
        attribution_window=args.attribution_window,
        experiments_topic=_topic_or_none(args.experiments_topic),
        dead_letter_topic=args.dead_letter_topic,
        pinned=frozenset(given),
        family_settings=dict(args.model_setting),
        device=resolve_device(args.device),
        tune=args.tune == "on",
        tune_budget=args.tune_budget,
        retune_every=args.retune_every,
        retune_interval=args.retune_interval,
        ranker=args.ranker,
        ranker_interval=args.ranker_interval,
        items_topic=args.items_topic,
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
    from ..server import ServerConfig, run_server
    from ..store import LocalStore

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
    if args.experiment != "off" and not args.challenger_model_dir:
        raise RecommenderError("--experiment needs --challenger-model-dir (the challenger)")
    if not 0 <= args.explore < 1 or args.max_fresh_items < 0:
        raise RecommenderError("--explore must be from 0 to below 1, --max-fresh-items >= 0")
    if args.ranker_candidates is not None and not 1 <= args.ranker_candidates <= 10_000:
        raise RecommenderError("--ranker-candidates must be from 1 to 10000")
    if not 0 < args.experiment_share < 1:
        raise RecommenderError("--experiment-share must be above 0 and below 1")
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
            catalog_memory=args.catalog_memory,
            chat_memory=args.chat_memory,
            explore=args.explore,
            ranker=args.ranker == "on",
            ranker_candidates=args.ranker_candidates,
            max_fresh_items=args.max_fresh_items,
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
            exposures_topic=_topic_or_none(args.exposures_topic) if wants_kafka else None,
            attribution_window_s=args.attribution_window,
            experiments_topic=_topic_or_none(args.experiments_topic) if wants_kafka else None,
            challenger_model_dir=args.challenger_model_dir,
            experiment=args.experiment,
            experiment_share=args.experiment_share,
        )
    )
    return 0


def run_broker(args: argparse.Namespace) -> int:
    from ..broker import EmbeddedBroker

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
    from ..status import render_status

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
    from ..evaluation import EvaluateOptions, run_evaluation
    from ..evaluation.run import PROTOCOLS

    if not args.data_file.is_file():
        raise RecommenderError(f"{args.data_file}: no such file")
    protocols = list(PROTOCOLS) if "all" in args.protocol else args.protocol
    outcome = run_evaluation(
        EvaluateOptions(
            data_file=args.data_file,
            output_dir=args.output_dir,
            protocols=protocols or ([] if args.exposures else ["temporal"]),
            exposures=args.exposures,
            attribution_window=args.attribution_window,
            ks=args.k,
            min_rating=args.min_rating,
            ratings=args.ratings,
            test_fraction=args.test_fraction,
            cutoff=args.cutoff,
            search_budget=args.search_budget,
            daemon_budget=args.daemon_budget,
            family_budget=args.family_budget,
            quick=args.quick,
            ranker=args.ranker == "on",
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
    from ..demo import DemoOptions
    from ..demo import run_demo as demo

    return demo(
        DemoOptions(
            port=args.port,
            broker_port=args.broker_port,
            workdir=args.workdir,
            rate=args.rate,
            dataset=args.dataset,
            challenger=args.challenger,
        )
    )


def run_bot_command(args: argparse.Namespace) -> int:
    from ..bot import BotSettings, run_bot

    token = args.token or os.environ.get("TELEGRAM_BOT_TOKEN")
    if not token:
        raise RecommenderError("give the bot's token: --token or $TELEGRAM_BOT_TOKEN (BotFather)")
    if not args.telegram_url.rstrip("/").endswith("/bot"):
        raise RecommenderError(
            f"--telegram-url {args.telegram_url!r} must end in /bot (for example "
            "http://127.0.0.1:8081/bot): the Bot API's method URLs are that, the token, and "
            "the method"
        )
    run_bot(
        BotSettings(
            token=token,
            server_url=args.server,
            api_token=args.api_token,
            telegram_url=args.telegram_url,
        )
    )
    return 0
