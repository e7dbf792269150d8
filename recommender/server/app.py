"""The aiohttp application: state, middleware, routes, background tasks (running it is
:mod:`.processes`'s)."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from ..items import Catalog
from ..kafka import BrokerHealth, parse_overrides
from ..logs import RateLimitedLog
from ..serving.batching import ScoreBatcher
from ..serving.fresh import FreshEvents
from ..serving.pipeline import Serving
from ..store import open_store
from .answers import routes as answer_routes
from .chat_state import AskedMemory, Registrations, SharedRegistry
from .experiments import Experiments, experiments_of
from .experiments import routes as experiment_routes
from .exposures import ExposureLog, exposures_of
from .feed import Feed
from .follower import Coverage, Follower
from .ingest import MAX_BODY_BYTES, Ingest
from .metrics import ServerMetrics
from .routes import routes
from .seed_api import ChatState
from .seed_api import routes as seed_routes
from .state import (
    BATCHER,
    CATALOG,
    CHAT,
    CONFIG,
    COVERAGE,
    EXPERIMENTS,
    EXPOSURES,
    FEED,
    FRESH,
    HEALTH,
    HOLDER,
    INGEST,
    METRICS,
    SERVING,
    STORE,
    ModelHolder,
    ServerConfig,
)
from .validation import json_error
from .watcher import snapshot_watcher

__all__ = ["create_app"]

log = logging.getLogger(__name__)
_failures = RateLimitedLog(log, interval=60.0)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Routes that never need a token: liveness and readiness probes of load balancers, and the
#: page's vendored charting library (public code).
OPEN_ROUTES = frozenset({"/health", "/ready", "/static/vendor/{name}"})


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time and count every request; turn every error into a JSON body."""
    started = time.perf_counter()
    route = _route_of(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            response = web.Response(
                status=exc.status, text=exc.text, content_type="application/json"
            )
        else:
            response = json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        if "Allow" in exc.headers:  # a 405 must say what is allowed (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception as exc:
        # Logged once per cause with its traceback, then counted: a bug hit by every request
        # must not bury the log under tracebacks.
        request.app[METRICS].server_errors.labels(route).inc()
        where = exc.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        cause = f"{route} {type(exc).__name__} {where.tb_frame.f_code.co_filename if where else ''}"
        _failures.exception(
            f"{cause}:{where.tb_lineno if where else 0}",
            "error answering %s %s: %s: %s",
            request.method,
            route,
            type(exc).__name__,
            exc,
        )
        response = json_error(500, "internal_error", "the server failed to answer; see its log")
    request.app[METRICS].observe_request(route, response.status, time.perf_counter() - started)
    return response


@web.middleware
async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer token for writes, and for reads with --require-token-for-reads."""
    config = request.app[CONFIG]
    token = config.api_token
    needed = token is not None and (
        request.method not in ("GET", "HEAD")
        or (config.require_token_for_reads and _route_of(request) not in OPEN_ROUTES)
    )
    if needed:
        # Header bytes that are not UTF-8 arrive as surrogates: compare bytes, never fail on them.
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        expected = f"Bearer {token}".encode()
        if not hmac.compare_digest(given, expected):
            response = json_error(401, "unauthorized", "send Authorization: Bearer <token>")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
    return await handler(request)


async def kafka_clients(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the Kafka follower thread and the ingest producer, when configured."""
    config = app[CONFIG]
    follower = None
    if config.kafka is not None:
        holder = app[HOLDER]
        follower = Follower(
            kafka=config.kafka,
            topic=config.topic,
            items_topic=config.items_topic,
            fresh=app[FRESH],
            feed=app[FEED],
            current_model=lambda: holder.model,
            metrics=app[METRICS],
            health=app[HEALTH],
            control_topic=experiments_of(app).topic,
        )
        app[COVERAGE] = follower
        follower.start()
        if config.enable_ingest:
            app[INGEST] = Ingest(config.kafka, config.topic, app[HEALTH])
    yield
    if follower is not None:
        follower.stop()
    ingest = app.get(INGEST)
    if isinstance(ingest, Ingest):
        ingest.close()
    exposures_of(app).close()


def create_app(
    config: ServerConfig, *, chat_registry: SharedRegistry | None = None
) -> web.Application:
    """Build the application for ``config`` (background tasks start with the app);
    ``chat_registry``: registration tables shared by worker processes."""
    # Long id lists, percent-encoded, can exceed aiohttp's default 8 KiB request line.
    app = web.Application(
        middlewares=[observe, authorize],
        handler_args={"max_line_size": 131_072},
        client_max_size=MAX_BODY_BYTES,
    )
    catalog = Catalog(max_bytes=config.catalog_memory)
    holder = ModelHolder(catalog, config)
    fresh = FreshEvents(
        max_bytes=config.fresh_memory,
        max_per_user=config.max_fresh_per_user,
        max_users=config.max_fresh_users,
    )
    health = BrokerHealth()
    app[CONFIG] = config
    app[HEALTH] = health
    app[STORE] = open_store(
        config.model_dir,
        options=parse_overrides(config.store_options),
        cache_dir=config.cache_dir,
    )
    app[HOLDER] = holder
    app[FRESH] = fresh
    app[CATALOG] = catalog
    app[METRICS] = metrics = ServerMetrics(
        lambda: holder.model,
        fresh,
        catalog,
        health if config.kafka is not None else None,
        lambda: holder.builder_status,
        lambda: holder.online_status,
        holder.new_items.counts,
    )
    app[BATCHER] = ScoreBatcher(window=config.batch_window, on_batch=metrics.score_batch.observe)
    app[COVERAGE] = Coverage()
    app[INGEST] = None
    app[EXPOSURES] = ExposureLog(config.kafka, config.exposures_topic, metrics, health)
    app[EXPERIMENTS] = experiments = Experiments(config, config.kafka, catalog)
    app[SERVING] = Serving(
        champion=lambda: holder.pipeline,
        challenger=lambda: experiments.challenger.pipeline,
        experiment=experiments.current,
        score=app[BATCHER].score,
        exposures=app[EXPOSURES],  # type: ignore[arg-type]
        on_arm_failure=metrics.arm_failures.inc,
    )
    app[FEED] = Feed(
        catalog=catalog,
        fresh=fresh,
        served=lambda: [
            p for p in (holder.pipeline, experiments.challenger.pipeline) if p is not None
        ],
        coverage=lambda model: app[COVERAGE].positions(model),
        metrics=metrics,
        on_control=experiments.apply,
    )

    app.add_routes(answer_routes)
    app.add_routes(routes)
    app.add_routes(seed_routes)
    app.add_routes(experiment_routes)
    registrations = Registrations(config.chat_memory // 4, shared=chat_registry)
    app[CHAT] = ChatState(
        registrations=registrations,
        asked=AskedMemory(max_bytes=config.chat_memory * 3 // 4),
        attribution_window_s=config.attribution_window_s,
    )
    app.on_cleanup.append(lambda app: _close(registrations))
    app.cleanup_ctx.append(snapshot_watcher)
    app.cleanup_ctx.append(kafka_clients)
    return app


async def _close(registrations: Registrations) -> None:
    registrations.close()
