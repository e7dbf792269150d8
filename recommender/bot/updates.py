"""Fetching updates so that one the library cannot read is skipped, not fetched forever.

python-telegram-bot turns a ``getUpdates`` answer into ``Update`` objects all at once; if one of
them does not decode (a field of the wrong type, a shape newer than the library), it logs the
error and asks again from the same offset, so the same batch comes back at once, forever: no
later update is ever answered (11,572 tracebacks in 25 s). :class:`UpdatesRequest` checks each
update as the library will decode it and puts an empty update with the same ``update_id`` in the
place of a bad one: the library then confirms it with the next offset, and nothing handles it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from ..logs import RateLimitedLog

__all__ = ["UpdatesRequest"]

log = logging.getLogger(__name__)


class UpdatesRequest(HTTPXRequest):
    """The request object for ``getUpdates`` only (``ApplicationBuilder.get_updates_request``).

    Attributes
    ----------
    skipped
        How many updates it has skipped since it was made.
    """

    def __init__(self, *, interval: float = 10.0, **kwargs: Any) -> None:
        kwargs.setdefault("connection_pool_size", 1)  # what the library uses for getUpdates
        super().__init__(**kwargs)
        self.skipped = 0
        self._log = RateLimitedLog(log, interval=interval)

    def parse_json_payload(self, payload: bytes) -> dict[str, Any]:  # type: ignore[override]
        """Telegram's answer as JSON, each update in it that does not decode made empty.

        Raises
        ------
        TelegramError
            If the answer is not JSON (the library then retries, with a growing pause).
        """
        try:
            answer = json.loads(payload.decode("utf-8", "replace"))
        except ValueError as exc:
            # The library's own parser logs the whole body with a traceback, on every retry.
            raise TelegramError(f"Telegram answered something that is not JSON: {exc}") from exc
        if isinstance(answer, dict) and isinstance(answer.get("result"), list):
            checked = (self._checked(update) for update in answer["result"])
            answer["result"] = [update for update in checked if update is not None]
        return answer

    def _checked(self, update: Any) -> Any:
        try:
            Update.de_json(update, None)
        except Exception as exc:  # whatever the decoder raises, the update is skipped
            update_id = update.get("update_id") if isinstance(update, dict) else None
            self.skipped += 1
            self._log.warning(
                "bad update",
                "skipped update %s that python-telegram-bot cannot read (%s: %.200s); "
                "%d skipped so far",
                update_id,
                type(exc).__name__,
                exc,
                self.skipped,
            )
            if isinstance(update_id, int):
                return {"update_id": update_id}
            return None  # no id to confirm it with: Telegram always sends one
        return update
