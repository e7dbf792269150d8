"""Logging set-up for the daemons, and a rate limiter for floods of similar lines."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal

__all__ = ["LogFormat", "RateLimitedLog", "configure_logging"]

LogFormat = Literal["text", "json"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Send log lines to stderr, as text for people or one JSON object a line for machines."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RateLimitedLog:
    """Log at most one line per key every ``interval`` seconds, counting what it held back.

    Under a flood of malformed events the log shows one line per reason and interval, each
    saying how many similar events were not logged individually.
    """

    def __init__(self, logger: logging.Logger, *, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object, count: int = 1) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + count
            return
        held = self._held.pop(key, 0) + count - 1
        self._last[key] = now
        suffix = f" (+{held} more like it since the last line)" if held else ""
        self.logger.warning(message + suffix, *args)
