"""Logging set-up for the daemons, and a rate limiter for floods of similar lines."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal
from urllib.parse import quote

__all__ = ["LogFormat", "RateLimitedLog", "SecretFilter", "configure_logging", "hide_secret"]

LogFormat = Literal["text", "json"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:  # exc_text first: a SecretFilter may have cleaned it
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)
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
        self._log(logging.WARNING, key, message, args, count, traceback=False)

    def exception(self, key: str, message: str, *args: object) -> None:
        """An error being handled (call it in an ``except`` block): its traceback only the first
        time ``key`` is seen, then one line per interval with the count."""
        self._log(logging.ERROR, key, message, args, 1, traceback=key not in self._last)

    def _log(
        self, level: int, key: str, message: str, args: tuple[object, ...], count: int, *,
        traceback: bool,
    ) -> None:  # fmt: skip
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + count
            return
        held = self._held.pop(key, 0) + count - 1
        self._last[key] = now
        suffix = f" (+{held} more like it since the last line)" if held else ""
        self.logger.log(level, message + suffix, *args, exc_info=traceback)


class SecretFilter(logging.Filter):
    """Replace a secret (and its URL-quoted form) by ``***`` in every record it sees.

    On a handler it sees every record that handler writes, whichever logger made it: the
    message with its arguments, the traceback and the stack. Libraries put secrets where we do
    not look: httpx logs each request's URL, and a Telegram bot's token is part of its URLs.
    """

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secrets = sorted({secret, quote(secret, safe="")}, key=len, reverse=True)
        self._tracebacks = logging.Formatter()

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._tracebacks.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


def hide_secret(secret: str) -> None:
    """Keep ``secret`` out of every line the root logger's handlers write (call it after
    :func:`configure_logging`, which replaces those handlers)."""
    if not secret:
        return
    for handler in logging.getLogger().handlers:
        handler.addFilter(SecretFilter(secret))
