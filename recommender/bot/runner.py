"""Running the bot: check the token, poll Telegram until SIGINT or SIGTERM, stop cleanly.

What goes wrong at the start is said in one line, as a :class:`~recommender.errors.
RecommenderError` (``recommender bot`` exits with code 2): a token Telegram refuses, or a
Telegram that cannot be reached. The latter is not retried: at the start it is most often a
wrong ``--telegram-url`` or a host with no network, which a retry loop would hide; a supervisor
restarts the process if it is an outage. Once the bot polls, failures are retried with a pause
growing to 30 s, one log line each.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import aiohttp
from telegram import Update
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import Application

from ..errors import RecommenderError
from ..logs import hide_secret
from .app import TELEGRAM_URL, BotSettings, build_application
from .client import ServerClient
from .updates import UpdatesRequest

__all__ = ["run_bot"]

log = logging.getLogger(__name__)

#: httpx logs every request's URL at INFO, and the Bot API's URLs hold the token.
_CHATTY: tuple[str, ...] = ("httpx", "httpcore")


def run_bot(settings: BotSettings) -> None:
    """Poll Telegram until SIGINT/SIGTERM.

    Raises
    ------
    RecommenderError
        If Telegram refuses the token, cannot be reached, or answers the first call with an
        error.
    """
    hide_secret(settings.token)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    log.info("bot polling %s, recommending from %s", settings.telegram_url, settings.server_url)
    asyncio.run(_serve(settings))


async def _serve(settings: BotSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    updates = UpdatesRequest()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        client = ServerClient(settings.server_url, session, settings.api_token)
        app = build_application(settings, client, updates)
        await _initialize(app, settings.telegram_url)
        try:
            assert app.updater is not None  # the builder makes one
            await app.updater.start_polling(
                allowed_updates=Update.ALL_TYPES, error_callback=_polling_failed
            )
            await app.start()
            log.info("polling Telegram as @%s", app.bot.username)
            await stop.wait()
        finally:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()
    log.info("bot stopped (%d unreadable updates skipped)", updates.skipped)


async def _initialize(app: Application, telegram_url: str) -> None:
    """``getMe``: the token and the URL checked before polling, each failure one clear line."""
    try:
        await app.initialize()
    except TelegramError as exc:
        await app.bot.shutdown()  # its HTTP clients are open; the application never was
        raise _explain(exc, telegram_url) from None
    except BaseException:
        await app.bot.shutdown()
        raise


def _explain(exc: TelegramError, telegram_url: str) -> RecommenderError:
    if isinstance(exc, InvalidToken):  # no text of exc: the library puts the token in it
        return RecommenderError(
            "Telegram refused the token: check --token / $TELEGRAM_BOT_TOKEN (BotFather)"
            + ("" if telegram_url == TELEGRAM_URL else ", and that --telegram-url is a Bot API")
        )
    if isinstance(exc, NetworkError):  # TimedOut too
        return RecommenderError(
            f"cannot reach Telegram at {telegram_url} ({exc}): check the network or --telegram-url"
        )
    return RecommenderError(
        f"Telegram at {telegram_url} answered getMe with an error ({exc}): check --telegram-url"
    )


def _polling_failed(exc: TelegramError) -> None:
    # Called by the library's retry loop, which then waits 1 s, 1.5 times longer each time up
    # to 30 s; its own default logs a traceback on every try.
    log.warning("polling Telegram failed (%s: %s); retrying", type(exc).__name__, exc)
