"""Server settings, the serving model behind one reference, and the typed keys of app state."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import one_line
from ..items import Catalog
from ..items.fresh import FreshItems
from ..kafka import BrokerHealth, KafkaSettings
from ..logs import LogFormat
from ..serving.batching import ScoreBatcher
from ..serving.fresh import FreshEvents
from ..serving.learned import LearnedRanking
from ..serving.model import RecommenderModel
from ..serving.pipeline import ModelPipeline, Serving
from ..store import SnapshotStore
from .feed import Feed
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
    "FEED",
    "FRESH",
    "HEALTH",
    "HOLDER",
    "INGEST",
    "METRICS",
    "SERVING",
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
    #: The item catalogue's memory (records and remembered deletions, estimated).
    catalog_memory: int = 512 << 20
    #: New items (unknown to the serving model) given vectors from fresh events or categories.
    max_fresh_items: int = 10_000
    #: The share of each answer's slots reserved for new items (0: they compete on score).
    explore: float = 0.0
    #: Rank with the snapshot's learned ranker where it has one that serves.
    ranker: bool = True
    #: Candidates the ranker reorders per request (None: as many as it was trained on).
    ranker_candidates: int | None = None
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
    """Holds a served model's pipeline (the model and what is derived from it). Swapping is one
    reference assignment: a request that already took ``holder.pipeline`` finishes on it,
    whatever is swapped in meanwhile.

    Parameters
    ----------
    catalog : Catalog
        Shared by every holder: the pipelines' rules.
    config : ServerConfig
        The rules' settings and the bounds of the new items.
    """

    def __init__(self, catalog: Catalog, config: ServerConfig) -> None:
        self.pipeline: ModelPipeline | None = None
        self.catalog = catalog
        self.config = config
        #: Items the served model does not know, with vectors for it (see items.fresh): each
        #: holder has its own, so a champion and a challenger never share one.
        self.new_items = FreshItems(catalog, max_items=config.max_fresh_items)
        #: Why the newest snapshot is not served (a refusal), or None.
        self.refused: str | None = None
        self.loaded_at: float | None = None
        #: The builder's live status document (refusals, tuning), read from the store.
        self.builder_status: dict[str, Any] | None = None
        #: The monitor's live quality and experiment results, read from the store.
        self.online_status: dict[str, Any] | None = None
        #: Why the served snapshot's ranker is not used (it could not be loaded), or None.
        self.ranker_problem: str | None = None
        #: Set once a model is served (a worker process listens only from then on).
        self.loaded = asyncio.Event()

    @property
    def model(self) -> RecommenderModel | None:
        pipeline = self.pipeline
        return None if pipeline is None else pipeline.model

    def pipeline_ranker(self) -> LearnedRanking | None:
        """The served model's learned ranking stage, if one ranks its answers."""
        ranker = None if self.pipeline is None else self.pipeline.ranker
        return ranker if isinstance(ranker, LearnedRanking) else None

    def prepare(self, model: RecommenderModel) -> ModelPipeline:
        """``model``'s pipeline, nothing derived from the served one kept: the new items get
        their vectors for it, its rules their columns (blocking: run it off the loop)."""
        try:
            ranking = (
                LearnedRanking.of(model, candidates=self.config.ranker_candidates)
                if self.config.ranker
                else None
            )
        except Exception as exc:  # a broken ranker: answer with the family's order, say so
            ranking = None
            self.ranker_problem = f"v{model.version}'s ranker could not be loaded: {one_line(exc)}"
            log.error("%s; answering in the family's order", self.ranker_problem)
        else:
            off = not self.config.ranker and (model.manifest.get("ranker") or {}).get("serves")
            self.ranker_problem = "this server runs with --ranker off" if off else None
        pipeline = ModelPipeline(
            model,
            catalog=self.catalog,
            new_items=self.new_items,
            catalog_only=self.config.catalog_only,
            explore=self.config.explore,
            ranker=ranking,
        )
        self.new_items.rebase(model)
        pipeline.visibility.warm()
        return pipeline

    def swap(self, pipeline: ModelPipeline) -> RecommenderModel | None:
        """Serve ``pipeline`` (made by :meth:`prepare`); returns the model served before."""
        old = self.model
        self.pipeline = pipeline
        self.refused = None
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
SERVING = web.AppKey("serving", Serving)
INGEST = web.AppKey("ingest", object)  # an Ingest when --enable-ingest (see ingest.py)
EXPOSURES = web.AppKey("exposures", object)  # the ExposureLog (see exposures.py)
FEED = web.AppKey("feed", Feed)
EXPERIMENTS = web.AppKey("experiments", object)  # the Experiments (see experiments.py)
CHAT = web.AppKey("chat", object)  # the seed API's ChatState (see seed_api.py)
