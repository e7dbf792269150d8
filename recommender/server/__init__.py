"""The HTTP server: routes, validation, hot-swap watcher, metrics, page."""

from .app import create_app
from .processes import run_server
from .state import ModelHolder, ServerConfig

__all__ = ["ModelHolder", "ServerConfig", "create_app", "run_server"]
