"""Command-line options shared by the ``recommender`` commands: value types and option groups.

The builder's and the server's options live here so that ``cli`` is only about running them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import get_args

from .logs import LogFormat

__all__ = [
    "add_common",
    "add_kafka",
    "add_model_dir",
    "batch_window_ms",
    "build_parser_for_builder",
    "build_parser_for_server",
    "byte_size",
    "duration",
    "duration_list",
    "int_list",
    "optional_duration",
    "port_number",
    "positive_float",
    "quality_drop",
]


def _family_names() -> list[str]:
    from .models import FAMILIES

    return sorted(FAMILIES)


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument(
        "--log-format", default="text", choices=get_args(LogFormat), help="text, or json lines"
    )


def add_kafka(parser: argparse.ArgumentParser) -> None:
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


def add_model_dir(parser: argparse.ArgumentParser) -> None:
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


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535 (0 where a free port is meant is not accepted here)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is from 1 to 65535, got {value}")
    return value


def positive_float(text: str) -> float:
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


def optional_duration(text: str) -> float | None:
    return None if text.strip().lower() == "off" else duration(text)


def quality_drop(text: str) -> float | None:
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
        "dislikes) or 1..10:7:4; see README",
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
    add_kafka(parser)
    add_common(parser)


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
        "--fresh-memory",
        type=byte_size,
        default=256 << 20,
        metavar="SIZE",
        help="memory for fresh events, e.g. 256MB or 2GB (default 256MB): over it, the least "
        "recently active users' fresh events are dropped (counted in /metrics)",
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


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected integers >= 0, got {text!r}")
    return values


def batch_window_ms(text: str) -> float:
    """Milliseconds from 0 to 100 (longer would be latency, not batching)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected 0 to 100 milliseconds, got {text!r}")
    return value


def duration_list(text: str) -> list[float]:
    """Comma-separated durations, as ``--half-life`` takes them: ``1d,7d,30d``."""
    return [duration(v.strip()) for v in text.split(",") if v.strip()] or [duration(text)]
