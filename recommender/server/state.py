"""The serving model behind one reference, and the typed keys of the app's state."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ..model import RecommenderModel
from .metrics import ServerMetrics

__all__ = ["CONFIG", "HOLDER", "METRICS", "ModelHolder", "ServerConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerConfig:
    """Settings of one server process."""

    model_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    max_n: int = 1000
    default_n: int = 10
    poll_interval: float = 0.25


class ModelHolder:
    """Holds the serving model. Swapping is one reference assignment: a request that already
    took ``holder.model`` finishes on that model, whatever is swapped in meanwhile."""

    def __init__(self) -> None:
        self.model: RecommenderModel | None = None
        self.loaded_at: float | None = None

    def swap(self, model: RecommenderModel) -> RecommenderModel | None:
        old, self.model = self.model, model
        self.loaded_at = time.time()
        return old


# Typed application state (aiohttp AppKey).
CONFIG = web.AppKey("config", ServerConfig)
HOLDER = web.AppKey("holder", ModelHolder)
METRICS = web.AppKey("metrics", ServerMetrics)
