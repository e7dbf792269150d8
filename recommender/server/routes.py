"""HTTP handlers."""

from __future__ import annotations

from aiohttp import web

from ..model import Answer, RecommenderModel
from .page import INDEX_HTML
from .state import CONFIG, HOLDER, METRICS
from .validation import bool_param, id_list_param, id_param, int_param, json_error

__all__ = ["routes"]

routes = web.RouteTableDef()


def _model_or_503(request: web.Request) -> RecommenderModel:
    model = request.app[HOLDER].model
    if model is None:
        raise web.HTTPServiceUnavailable(
            text='{"error": "model_not_ready", "message": "no snapshot has been loaded yet; '
            'is the model builder running and has it retrained once?"}',
            content_type="application/json",
        )
    return model


def _count(request: web.Request, answer: Answer) -> None:
    metrics = request.app[METRICS]
    metrics.answers.labels(answer.source).inc()
    if answer.fallback:
        metrics.fallbacks.inc()


@routes.get("/recommend")
async def recommend(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    user = id_param(request, "user")
    n = int_param(request, "n", default=config.default_n, minimum=1, maximum=config.max_n)
    filter_seen = bool_param(request, "filter_seen", default=True)
    exclude = id_list_param(request, "exclude")
    model = _model_or_503(request)
    answer = model.recommend(user, n, filter_seen=filter_seen, exclude=exclude)
    _count(request, answer)
    return web.json_response(
        {
            "user": user,
            "items": [{"item": s.item, "score": s.score} for s in answer.items],
            "source": answer.source,
            "fallback": answer.fallback,
            "model_version": model.version,
        }
    )


@routes.get("/")
async def index(request: web.Request) -> web.StreamResponse:
    """The seed's query (``/?userId=&recommendationsNumber=``), else the web page."""
    if "userId" not in request.query and "recommendationsNumber" not in request.query:
        return web.Response(text=INDEX_HTML, content_type="text/html")
    config = request.app[CONFIG]
    user = id_param(request, "userId")
    n = int_param(
        request, "recommendationsNumber", default=config.default_n, minimum=1, maximum=config.max_n
    )
    model = _model_or_503(request)
    answer = model.recommend(user, n)
    _count(request, answer)
    return web.json_response({"user_id": user, "recommended_items": [s.item for s in answer.items]})


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    model = request.app[HOLDER].model
    if model is None:
        return json_error(503, "model_not_ready", "no snapshot has been loaded yet")
    return web.json_response({"status": "ready", "model_version": model.version})


@routes.get("/model")
async def model_info(request: web.Request) -> web.Response:
    model = _model_or_503(request)
    holder = request.app[HOLDER]
    return web.json_response(
        {
            "manifest": model.manifest,
            "loaded_at": holder.loaded_at,
            "users": model.n_users,
            "items": model.n_items,
        }
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
