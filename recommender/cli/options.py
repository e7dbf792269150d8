"""Command-line options shared by the ``recommender`` commands: value types and option groups.

The builder's and the server's options live here so that ``cli`` is only about running them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from ..logs import LogFormat

__all__ = [
    "add_common",
    "add_kafka",
    "add_model_dir",
    "batch_window_ms",
    "byte_size",
    "duration",
    "duration_list",
    "int_list",
    "model_setting",
    "optional_duration",
    "port_number",
    "positive_float",
    "quality_drop",
]


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


def model_setting(text: str) -> tuple[str, bool | int | float | str]:
    """``NAME=VALUE``: a number, true/false, or text (the family validates it)."""
    name, sep, raw = text.partition("=")
    name, raw = name.strip(), raw.strip()
    if not sep or not name or not raw:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, e.g. ease_lambda=200; got {text!r}")
    value: bool | int | float | str
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
    return name, value


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
