"""The ``recommender serve`` command's options."""

from __future__ import annotations

import argparse
import os

from .options import (
    add_common,
    add_kafka,
    add_model_dir,
    batch_window_ms,
    byte_size,
    duration,
    port_number,
    positive_float,
)

__all__ = ["build_parser_for_server"]


def build_parser_for_server(parser: argparse.ArgumentParser) -> None:
    add_model_dir(parser)
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    parser.add_argument("--port", type=port_number, default=8000)
    parser.add_argument("--max-n", type=int, default=1000, help="largest n a client may ask for")
    parser.add_argument(
        "--poll-interval",
        type=positive_float,
        help="seconds between snapshot checks (default 0.25 for a directory, 2 for an object "
        "store: every check is a LIST request)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes sharing the port (SO_REUSEPORT)"
    )
    topk = parser.add_argument_group("top-k search")
    topk.add_argument(
        "--batch-window",
        type=batch_window_ms,
        default=1.0,
        metavar="MS",
        help="while requests arrive together, let one wait up to this many milliseconds to be "
        "scored with the next ones (default 1; 0: only those parsed in the same loop turn)",
    )
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
        "--catalog-memory",
        type=byte_size,
        default=512 << 20,
        metavar="SIZE",
        help="memory for the item catalogue, e.g. 512MB (default): past it new items are "
        "refused and the oldest remembered deletions forgotten (both counted in /metrics)",
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
        "--exposures-topic",
        default="recommendations",
        help="log every answer (recommendation_id, user, items, model, arm) to this topic when "
        "following Kafka (default recommendations; off: not logged)",
    )
    live.add_argument(
        "--attribution-window",
        type=duration,
        default=1800.0,
        help="a chat API rating names the chat answer that showed the item when that answer is "
        "at most this old (default 30m; give the builder the same, it attributes everything)",
    )
    live.add_argument(
        "--experiments-topic",
        default="experiments",
        help="follow experiment starts and stops here, and send POST /experiments here, so "
        "every replica runs the same experiment (default experiments; off: this process only)",
    )
    live.add_argument(
        "--challenger-model-dir",
        help="another builder's store, served next to the champion in an experiment",
    )
    live.add_argument(
        "--experiment",
        choices=["off", "interleave", "ab"],
        default="off",
        help="the experiment to run from the start (with --challenger-model-dir): team-draft "
        "interleaving, or A/B by a stable hash of the user",
    )
    live.add_argument(
        "--experiment-share",
        type=float,
        default=0.5,
        help="A/B: the share of users answered by the challenger (default 0.5)",
    )
    live.add_argument(
        "--explore",
        type=float,
        default=0.0,
        help="share of each answer's slots reserved for new items (unknown to the serving "
        "model, with vectors from their first events or their categories), e.g. 0.1; "
        "default 0: they compete on score, and an item with little evidence scores low",
    )
    live.add_argument(
        "--ranker",
        choices=["on", "off"],
        default="on",
        help="rank with the snapshot's learned ranker where the builder adopted one (default "
        "on); off: the family's own order",
    )
    live.add_argument(
        "--ranker-candidates",
        type=int,
        metavar="N",
        help="the family's top N items the ranker reorders for each request (default: as many "
        "as it was trained on, 200); fewer cost less (~1.5 us an item) and reach less far",
    )
    live.add_argument(
        "--max-fresh-items",
        type=int,
        default=10_000,
        help="new items given vectors between snapshots (least recently updated dropped first)",
    )
    live.add_argument(
        "--chat-memory",
        type=byte_size,
        default=48 << 20,
        metavar="SIZE",
        help="memory for the chat API's registrations (a quarter, shared by --workers) and its "
        "per-user 'asked recently' lists (the rest, per process); default 48MiB",
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
    add_kafka(parser)
    add_common(parser)
