"""Server settings, the serving model behind one reference, and the typed keys of app state."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ..items import Catalog
from ..items.fresh import FreshItems
from ..kafka import BrokerHealth, KafkaSettings
from ..logs import LogFormat
from ..serving.batching import ScoreBatcher
from ..serving.fresh import FreshEvents
from ..serving.model import RecommenderModel
from ..store import SnapshotStore
from .follower import Coverage
from .metrics import ServerMetrics

__all__ = [
    "BATCHER",
    "CATALOG",
    "CHAT",
    "CONFIG",
    "COVERAGE",
    "EXPERIMENTS",
    "EXPOSURES",
    "FRESH",
    "FRESH_ITEMS",
    "HEALTH",
    "HOLDER",
    "INGEST",
    "METRICS",
    "STORE",
    "ModelHolder",
    "ServerConfig",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerConfig:
    """Settings of one server process.

    With ``kafka`` set, the server follows ``topic`` for fresh events (fold-in) and, if given,
    ``items_topic`` for the item catalogue; ``enable_ingest`` also lets clients POST events, which
    are produced to ``topic``.
    """

    model_dir: str
    store_options: tuple[str, ...] = ()
    cache_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    max_n: int = 1000
    default_n: int = 10
    poll_interval: float = 0.25
    kafka: KafkaSettings | None = None
    topic: str = "interactions"
    items_topic: str | None = None
    catalog_only: bool = False
    fresh_memory: int = 256 << 20
    #: New items (unknown to the serving model) given vectors from fresh events or categories.
    max_fresh_items: int = 10_000
    #: The share of each answer's slots reserved for new items (0: they compete on score).
    explore: float = 0.0
    #: The chat API's memory: a quarter for registrations, the rest for "asked recently".
    chat_memory: int = 48 << 20
    max_fresh_users: int | None = None
    max_fresh_per_user: int = 200
    enable_ingest: bool = False
    api_token: str | None = None
    require_token_for_reads: bool = False
    workers: int = 1
    #: Seconds a request may wait to be scored with concurrent ones (see ``batching``).
    batch_window: float = 0.001
    #: Top-k through an HNSW graph from this many items on (``exact``: never).
    ann_threshold: int = 50_000
    ann_ef: int = 128
    exact: bool = False
    #: The seed API's POST /recommend answers nothing below this many ratings.
    min_ratings: int = 10
    #: Every answer logged to this topic (None: not logged; ids are given anyway).
    exposures_topic: str | None = None
    #: A chat rating names the chat answer that showed the item when it is at most this old
    #: (seconds; the builder's --attribution-window judges every interaction).
    attribution_window_s: float = 1800.0
    #: Another builder's store served next to the champion in an experiment.
    challenger_model_dir: str | None = None
    #: The experiment started with the server (off, interleave, ab) and A/B's challenger share.
    experiment: str = "off"
    experiment_share: float = 0.5
    #: Where experiments are started and stopped for every replica (None: this process only).
    experiments_topic: str | None = None
    #: How worker processes log (they start in fresh interpreters).
    log_level: str = "INFO"
    log_format: LogFormat = "text"


class ModelHolder:
    """Holds the serving model. Swapping is one reference assignment: a request that already
    took ``holder.model`` finishes on that model, whatever is swapped in meanwhile."""

    def __init__(self) -> None:
        self.model: RecommenderModel | None = None
        self.loaded_at: float | None = None
        #: The builder's live status document (refusals, tuning), read from the store.
        self.builder_status: dict[str, Any] | None = None
        #: The monitor's live quality and experiment results, read from the store.
        self.online_status: dict[str, Any] | None = None
        #: Set once a model is served (a worker process listens only from then on).
        self.loaded = asyncio.Event()

    def swap(self, model: RecommenderModel) -> RecommenderModel | None:
        old, self.model = self.model, model
        self.loaded_at = time.time()
        self.loaded.set()
        return old


# Typed application state (aiohttp AppKey).
CONFIG = web.AppKey("config", ServerConfig)
HOLDER = web.AppKey("holder", ModelHolder)
METRICS = web.AppKey("metrics", ServerMetrics)
BATCHER = web.AppKey("batcher", ScoreBatcher)
FRESH = web.AppKey("fresh", FreshEvents)
COVERAGE = web.AppKey("coverage", Coverage)
HEALTH = web.AppKey("health", BrokerHealth)
CATALOG = web.AppKey("catalog", Catalog)
STORE = web.AppKey("store", SnapshotStore)
INGEST = web.AppKey("ingest", object)  # an Ingest when --enable-ingest (see ingest.py)
EXPOSURES = web.AppKey("exposures", object)  # the ExposureLog (see exposures.py)
FRESH_ITEMS = web.AppKey("fresh_items", FreshItems)
EXPERIMENTS = web.AppKey("experiments", object)  # the Experiments (see experiments.py)
CHAT = web.AppKey("chat", object)  # the seed API's ChatState (see seed_api.py)
