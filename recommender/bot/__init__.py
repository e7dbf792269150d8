"""A Telegram bot for the service: rate items, get recommendations (:mod:`.app`, :mod:`.runner`)."""

from .app import BotSettings, build_application
from .runner import run_bot

__all__ = ["BotSettings", "build_application", "run_bot"]
