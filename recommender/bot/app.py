"""The Telegram bot (python-telegram-bot, async, long polling).

Commands: ``/start``; ``/rate`` (a title and link with buttons 1-5 and "don't know"; after each
answer the next question comes); ``/recommend`` (the top 3 with links, or how many more ratings
are needed); ``/search <title>`` (rate a title you know). Any other text is read as ratings on a
1-10 scale, as the anime bot took them: ``Naruto 9, Bleach 7`` rates both (titles matched
forgivingly against the catalogue; unknown ones are reported) and answers a top 10.

It talks to a recommender server through its seed-001 chat API (:mod:`.client`), so ratings go
through Kafka like every other event, and to Telegram at ``telegram_url`` (a local server that
speaks the Bot API in the tests). :mod:`.runner` runs it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Final

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from ..logs import RateLimitedLog
from .client import ServerClient, ServerError
from .parsing import MAX_TEXT, parse_ratings
from .updates import UpdatesRequest

__all__ = ["BotSettings", "build_application"]

log = logging.getLogger(__name__)
errors = RateLimitedLog(log)  # one line per kind of failure and 10 s, however many updates fail

TELEGRAM_URL: Final = "https://api.telegram.org/bot"
TYPED_SCALE: Final = "1..10"
HELP: Final = (
    "I recommend things to you from what you rate.\n"
    '/rate - rate items one by one (1-5, or "don\'t know")\n'
    "/recommend - your top 3\n"
    "/search <title> - rate a title you know\n"
    "Or type ratings from 1 to 10, like: Naruto 9, Bleach 7 - and get a top 10."
)


@dataclass(frozen=True, kw_only=True, slots=True)
class BotSettings:
    token: str = field(repr=False)  # a credential: never in a repr that might be logged
    server_url: str
    api_token: str | None = None
    telegram_url: str = TELEGRAM_URL
    top_n: int = 3
    typed_top_n: int = 10


async def _say(context: ContextTypes.DEFAULT_TYPE, chat: int, text: str, **kwargs: Any) -> None:
    """Send ``text``, cut to what Telegram takes (it refuses longer messages outright)."""
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "\u2026"
    await context.bot.send_message(chat, text, **kwargs)


def _client(context: ContextTypes.DEFAULT_TYPE) -> ServerClient:
    client: ServerClient = context.application.bot_data["client"]
    return client


def _links(items: list[dict[str, Any]]) -> str:
    lines = []
    for k, item in enumerate(items, 1):
        title = str(item.get("title") or item.get("id"))
        url = item.get("url")
        lines.append(f"{k}. {title}" + (f" - {url}" if url else ""))
    return "\n".join(lines)


def _rating_keyboard(key: int) -> InlineKeyboardMarkup:
    stars = [InlineKeyboardButton(str(r), callback_data=f"r:{key}:{r}") for r in range(1, 6)]
    return InlineKeyboardMarkup(
        [stars, [InlineKeyboardButton("Don't know it", callback_data=f"r:{key}:0")]]
    )


def _remember(context: ContextTypes.DEFAULT_TYPE, item_id: str) -> int:
    """A short key for ``item_id`` (callback data holds at most 64 bytes; ids may be longer)."""
    asks: dict[int, str] = context.chat_data.setdefault("asks", {})  # type: ignore[union-attr]
    key = int(context.chat_data.get("next_key", 0))  # type: ignore[union-attr]
    context.chat_data["next_key"] = key + 1  # type: ignore[index]
    asks[key] = item_id
    for old in [k for k in asks if k < key - 100]:  # bounded: the last 100 questions
        del asks[old]
    return key


async def _ask(chat: int, context: ContextTypes.DEFAULT_TYPE, item: dict[str, Any]) -> None:
    text = str(item.get("title") or item["id"])
    if item.get("url"):
        text += f"\n{item['url']}"
    await _say(
        context, chat, text, reply_markup=_rating_keyboard(_remember(context, str(item["id"])))
    )


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None
    known = await _client(context).register(update.effective_chat.id)
    greeting = "Welcome back!" if known else "Hello!"
    await _say(context, update.effective_chat.id, f"{greeting} {HELP}")


async def rate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None
    chat = update.effective_chat.id
    try:
        item = await _client(context).unrated(chat)
    except ServerError as exc:
        await _say(context, chat, f"Nothing to rate right now: {exc}")
        return
    await _ask(chat, context, item)


async def on_rating(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None and query.message is not None and query.data is not None
    chat = query.message.chat.id
    _, key, rating = query.data.split(":")
    item = context.chat_data.get("asks", {}).get(int(key))  # type: ignore[union-attr]
    if item is None:
        await query.answer("That question is too old: send /rate for a new one.")
        return
    recorded = await _client(context).rate(chat, item, float(rating))
    await query.answer(f"Rated {rating}" if recorded else "Skipped")
    await query.edit_message_reply_markup(reply_markup=None)
    await rate(update, context)  # the next question


async def recommend(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None
    chat = update.effective_chat.id
    answer = await _client(context).recommend(chat, context.application.bot_data["top_n"])
    if not answer["movies"]:
        have, need = answer.get("ratings", 0), answer.get("needed", 0)
        await _say(
            context,
            chat,
            f"Rate at least {need} items first (you have rated {have}): send /rate, or type "
            "a few ratings like: Naruto 9, Bleach 7",
        )
        return
    await _say(context, chat, "For you:\n" + _links(answer["movies"]))


async def search(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None
    chat = update.effective_chat.id
    title = " ".join(context.args or []).strip()
    if not title:
        await _say(context, chat, "Send /search and a title, e.g. /search Toy Story")
        return
    found = await _client(context).find(title, 5)
    if not found:
        await _say(context, chat, f"I know no title like \u201c{title}\u201d.")
        return
    await _ask(chat, context, found[0])
    if len(found) > 1:
        others = ", ".join(str(item.get("title")) for item in found[1:])
        await _say(context, chat, f"Not that one? Also: {others}")


async def typed_ratings(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The anime bot's flow: several ``Title rating`` at once, then a top 10."""
    message = update.effective_message
    assert update.effective_chat is not None and message is not None and message.text
    chat = update.effective_chat.id
    ratings, unreadable = parse_ratings(message.text)
    if not ratings:
        await _say(context, chat, HELP)
        return
    client = _client(context)
    rated, unknown, off_scale = [], [], []
    for typed in ratings:
        if not 1 <= typed.rating <= 10:
            off_scale.append(f"{typed.title} ({typed.rating:g})")
            continue
        found = await client.find(typed.title, 1)
        if not found:
            unknown.append(typed.title)
            continue
        await client.rate(chat, str(found[0]["id"]), typed.rating, TYPED_SCALE)
        rated.append(f"{found[0].get('title', found[0]['id'])} ({typed.rating:g})")
    lines = []
    if rated:
        lines.append("Rated: " + ", ".join(rated) + ".")
    if unknown:
        lines.append("Not found: " + ", ".join(unknown) + ".")
    if off_scale:
        lines.append("Ratings go from 1 to 10: " + ", ".join(off_scale) + ".")
    if unreadable:
        lines.append("Could not read: " + ", ".join(unreadable) + " (write: Title 8).")
    if rated:
        await _await_fold_in(client, chat, len(rated))
        top = await client.personal_top(chat, context.application.bot_data["typed_top_n"])
        lines.append(f"Your top {len(top)}:\n" + _links(top))
    await _say(context, chat, "\n".join(lines))


async def _await_fold_in(client: ServerClient, chat: int, at_least: int) -> None:
    """Ratings reach the server through Kafka: give them a moment to be folded in."""
    for _ in range(20):
        if await client.known_items(chat) >= at_least:
            return
        await asyncio.sleep(0.1)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    error = context.error
    errors.warning(
        type(error).__name__, "while handling an update: %s: %.300s", type(error).__name__, error
    )
    log.debug("the failure in full", exc_info=error)
    if isinstance(update, Update) and update.effective_chat is not None:
        reason = error if isinstance(error, ServerError) else "an internal error"
        try:
            await _say(context, update.effective_chat.id, f"Sorry, that failed: {reason}")
        except TelegramError as exc:  # else the library logs a traceback for each
            log.debug("could not say so: %s", exc)


def build_application(
    settings: BotSettings, client: ServerClient, updates: UpdatesRequest | None = None
) -> Application:
    """The bot's application, not yet initialized, answering from ``client``'s server.

    Parameters
    ----------
    settings
        The token, Telegram's URL and the sizes of the tops.
    client
        The recommender server's client.
    updates
        The request object for ``getUpdates`` (by default a new :class:`.UpdatesRequest`, which
        skips updates the library cannot read).
    """
    app = (
        ApplicationBuilder()
        .token(settings.token)
        .base_url(settings.telegram_url)
        .get_updates_request(updates or UpdatesRequest())
        .build()
    )
    app.bot_data.update(client=client, top_n=settings.top_n, typed_top_n=settings.typed_top_n)
    app.add_handler(CommandHandler(["start", "help"], start))
    app.add_handler(CommandHandler("rate", rate))
    app.add_handler(CommandHandler("recommend", recommend))
    app.add_handler(CommandHandler("search", search))
    app.add_handler(CallbackQueryHandler(on_rating, pattern=r"^r:\d+:[0-5]$"))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, typed_ratings))
    app.add_error_handler(on_error)
    return app
