"""A Telegram bot for the service: rate items, get recommendations (see :mod:`.app`)."""

from .app import BotSettings, build_application, run_bot

__all__ = ["BotSettings", "build_application", "run_bot"]
