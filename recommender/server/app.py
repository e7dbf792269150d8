"""The aiohttp application: state, middleware, routes, background watcher."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..blas import limit_blas_threads
from .metrics import ServerMetrics
from .routes import routes
from .state import CONFIG, HOLDER, METRICS, ModelHolder, ServerConfig
from .validation import json_error
from .watcher import snapshot_watcher

__all__ = ["create_app", "run_server"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time and count every request; turn every error into a JSON body."""
    started = time.perf_counter()
    route = "unmatched"
    resource = request.match_info.route.resource
    if resource is not None:
        route = resource.canonical
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            response = exc
        else:
            response = json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except Exception:
        log.exception("error answering %s %s", request.method, request.path_qs)
        response = json_error(500, "internal_error", "the server failed to answer; see its log")
    metrics = request.app[METRICS]
    metrics.requests.labels(route, str(response.status)).inc()
    metrics.latency.labels(route).observe(time.perf_counter() - started)
    if isinstance(response, web.HTTPException):
        response = web.Response(
            status=response.status, text=response.text, content_type="application/json"
        )
    return response


def create_app(config: ServerConfig) -> web.Application:
    """Build the application for ``config`` (the watcher starts with the app)."""
    app = web.Application(middlewares=[observe])
    holder = ModelHolder()
    app[CONFIG] = config
    app[HOLDER] = holder
    app[METRICS] = ServerMetrics(holder)
    app.add_routes(routes)
    app.cleanup_ctx.append(snapshot_watcher)
    return app


def run_server(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM (aiohttp's runner handles both and exits cleanly)."""
    limit_blas_threads()  # see recommender.blas: one thread serves faster here
    log.info(
        "serving on http://%s:%d, snapshots from %s", config.host, config.port, config.model_dir
    )
    web.run_app(create_app(config), host=config.host, port=config.port, print=None, access_log=None)
