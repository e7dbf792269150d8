"""Demo producers: interaction events (synthetic or replayed data sets) and item metadata.

``demo/user_interactions_producer.py`` and ``demo/item_producer.py`` are thin wrappers around
:func:`interactions_main` and :func:`items_main`.
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .datasets import DatasetName, datasets_dir, load_interactions, load_items
from .events import format_event
from .kafka import KafkaSettings, create_topic
from .logs import configure_logging
from .producer import produce_values
from .synthetic import TasteModel

__all__ = ["interactions_main", "items_main"]


def _kafka_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-servers", help="default: $KAFKA_BOOTSTRAP_SERVERS or localhost:9092"
    )
    parser.add_argument(
        "-X", dest="kafka_overrides", action="append", default=[], metavar="KEY=VALUE"
    )
    parser.add_argument("--kafka-config", type=Path)
    parser.add_argument("--partitions", type=int, default=4, help="when creating the topic")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _dataset_or_exit(name: DatasetName) -> None:
    if datasets_dir(name) is None:
        sys.exit(
            f"the {name} data set is not in ../shared/datasets (or $RECOMMENDER_DATASETS): "
            f"`recommender datasets fetch {name.split('-')[0]}` gets it or says how; "
            "or use --dataset synthetic"
        )


def interactions_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Publish user:item[:weight] events: synthetic hidden-taste traffic (default) "
        "or a replay of MovieLens (timestamp order) or anime (shuffled, fixed seed)."
    )
    parser.add_argument("--topic", default="interactions")
    parser.add_argument(
        "--dataset",
        choices=["synthetic", "movielens", "anime", "anime-ratings"],
        default="synthetic",
        help="anime: the watched history (weight 1); anime-ratings: ratings 1..10",
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="events/s (default: as fast as possible)"
    )
    parser.add_argument(
        "--count", type=int, default=None, help="stop after N events (synthetic: default forever)"
    )
    parser.add_argument("--min-rating", type=float, help="replays: keep ratings >= this")
    parser.add_argument("--users", type=int, default=2000, help="synthetic users")
    parser.add_argument("--items", type=int, default=1000, help="synthetic items")
    parser.add_argument("--groups", type=int, default=8, help="synthetic taste groups")
    parser.add_argument("--seed", type=int, default=1)
    _kafka_args(parser)
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    settings = KafkaSettings.from_options(
        args.bootstrap_servers, args.kafka_overrides, args.kafka_config
    )
    create_topic(settings, args.topic, partitions=args.partitions)
    producer = settings.producer()
    stop = _stop_event()
    send = functools.partial(
        produce_values,
        producer,
        args.topic,
        rate=args.rate,
        progress=not args.no_progress,
        should_stop=stop.is_set,
    )
    if args.dataset != "synthetic":
        _dataset_or_exit(args.dataset)
        data = load_interactions(
            args.dataset, min_rating=args.min_rating, seed=args.seed, limit=args.count
        )
        values = [
            format_event(u, i, float(w))
            for u, i, w in zip(data.users, data.items, data.weights.tolist(), strict=True)
        ]
        keys = [u.encode() for u in data.users]
        print(f"replaying {len(values)} {args.dataset} events ({data.order})", file=sys.stderr)
        send(values, keys=keys)
        return 0
    taste = TasteModel(users=args.users, items=args.items, groups=args.groups)
    rng = np.random.default_rng(args.seed)
    remaining = args.count
    chunk = 50_000
    while not stop.is_set() and (remaining is None or remaining > 0):
        size = chunk if remaining is None else min(chunk, remaining)
        users, items = taste.sample(size, rng)
        values = taste.values(users, items)
        keys = [v.partition(b":")[0] for v in values]
        send(values, keys=keys)
        if remaining is not None:
            remaining -= size
    return 0


def items_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Publish item metadata as JSON to the items topic."
    )
    parser.add_argument("--topic", default="items")
    parser.add_argument(
        "--dataset", choices=["synthetic", "movielens", "anime"], default="synthetic"
    )
    parser.add_argument("--items", type=int, default=1000, help="synthetic items")
    parser.add_argument("--groups", type=int, default=8, help="synthetic taste groups")
    _kafka_args(parser)
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    settings = KafkaSettings.from_options(
        args.bootstrap_servers, args.kafka_overrides, args.kafka_config
    )
    create_topic(settings, args.topic, partitions=1)
    if args.dataset == "synthetic":
        taste = TasteModel(items=args.items, groups=args.groups)
        records = [
            {
                "id": taste.item_id(k),
                "title": f"Item {k} (taste group {k % args.groups})",
                "group": k % args.groups,
                "categories": [f"taste group {k % args.groups}"],
            }
            for k in range(args.items)
        ]
    else:
        _dataset_or_exit(args.dataset)
        records = [
            {
                "id": info.id,
                "title": info.title,
                **({"url": info.url} if info.url else {}),
                **info.extra,
                **({"categories": list(info.categories)} if info.categories else {}),
                **({"attributes": info.attributes} if info.attributes else {}),
            }
            for info in load_items(args.dataset)
        ]
    values = [json.dumps(r, ensure_ascii=False).encode() for r in records]
    keys = [str(r["id"]).encode() for r in records]
    produce_values(
        settings.producer(), args.topic, values, keys=keys, progress=not args.no_progress
    )
    print(f"published {len(values)} items to {args.topic}", file=sys.stderr)
    return 0
