"""The answering routes: ``/recommend`` (users, fresh users, anonymous sessions, experiments),
the seed's ``/``, ``/similar`` and ``/popular``. Each parses and bounds its parameters into an
:class:`~recommender.serving.query.Ask` and hands it to the serving pipeline once
(:mod:`recommender.serving.pipeline`), which applies the catalogue's rules, scores, mixes an
experiment's arms and logs the answer under its recommendation id."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from ..models.answers import ScoredItem
from ..online.exposures import Arm
from ..serving.model import RecommenderModel
from ..serving.pipeline import ModelPipeline, Served
from ..serving.query import Ask
from .page import INDEX_HTML, PAGE_ASSETS
from .state import CATALOG, CONFIG, FRESH, HOLDER, METRICS, SERVING
from .validation import (
    bad_parameter,
    bool_param,
    filter_params,
    id_list_param,
    id_param,
    int_param,
    json_error,
    json_response,
)

__all__ = [
    "items_json",
    "model_or_503",
    "n_param",
    "not_found",
    "pipeline_or_503",
    "routes",
    "serve",
]

routes = web.RouteTableDef()


def pipeline_or_503(request: web.Request) -> ModelPipeline:
    """The champion's pipeline as it is now (a request keeps it, whatever is swapped in)."""
    pipeline = request.app[HOLDER].pipeline
    if pipeline is None:
        raise web.HTTPServiceUnavailable(
            text='{"error": "model_not_ready", "message": "no snapshot has been loaded yet; '
            'is the model builder running and has it retrained once?"}',
            content_type="application/json",
        )
    return pipeline


def model_or_503(request: web.Request) -> RecommenderModel:
    return pipeline_or_503(request).model


def not_found(what: str, value: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(
        text=json_error(404, f"unknown_{what}", f"the model does not know {what} {value!r}").text,
        content_type="application/json",
    )


def n_param(request: web.Request) -> int:
    config = request.app[CONFIG]
    return int_param(request, "n", default=config.default_n, minimum=1, maximum=config.max_n)


def _offset(request: web.Request) -> int:
    return int_param(request, "offset", default=0, minimum=0, maximum=request.app[CONFIG].max_n)


def items_json(
    request: web.Request, items: Sequence[ScoredItem], credit: Sequence[Arm] | None = None
) -> list[dict[str, Any]]:
    """Answer items as JSON, with their catalogue metadata and, in an interleaved answer, the arm
    that placed each one (its score is that arm's)."""
    catalog = request.app[CATALOG]
    out = []
    for k, scored in enumerate(items):
        entry: dict[str, Any] = {"item": scored.item, "score": scored.score}
        if credit is not None:
            entry["arm"] = credit[k]
        metadata = catalog.get(scored.item)
        if metadata is not None:
            entry["metadata"] = metadata
        out.append(entry)
    return out


async def serve(request: web.Request, ask: Ask) -> Served:
    """``ask`` through the serving pipeline (the champion's as it is now, or the experiment's
    arms), counted."""
    pipeline = pipeline_or_503(request)
    served = await request.app[SERVING].answer(ask, pipeline)
    if ask.kind != "popular":  # a recommendation, not a list asked for as popular
        metrics = request.app[METRICS]
        metrics.answers.labels(served.source).inc()
        if served.fallback:
            metrics.fallbacks.inc()
    return served


@routes.get("/recommend")
async def recommend(request: web.Request) -> web.Response:
    """Top-n for a user (``user=``) or for an anonymous list of items (``items=``). ``score``:
    the model family's score of the item for this history (its own scale: compare within one
    answer); an answer whose ``source`` is ``popular`` scores by event counts in the window;
    in an interleaved experiment each item says the ``arm`` that placed it."""
    has_user, has_items = "user" in request.query, "items" in request.query
    if has_user == has_items:
        bad_parameter("user", "give exactly one of user= or items=")
    n, offset = n_param(request), _offset(request)
    exclude = tuple(id_list_param(request, "exclude"))
    filter_seen = bool_param(request, "filter_seen", default=True)
    item_filter = filter_params(request)
    body: dict[str, Any]
    if has_user:
        user = id_param(request, "user")
        fresh = request.app[FRESH].events(user)
        ask = Ask(
            kind="user",
            route="/recommend",
            n=n,
            offset=offset,
            user=user,
            exclude=exclude,
            filter_seen=filter_seen,
            item_filter=item_filter,
            fresh=tuple(fresh),
            experiment=not offset,
        )
        body = {"user": user, "fresh_events": len(fresh)}
    else:
        items = id_list_param(request, "items")
        if not items:
            bad_parameter("items", "must list at least one item")
        ask = Ask(
            kind="items",
            route="/recommend",
            n=n,
            offset=offset,
            items=tuple(items),
            exclude=exclude,
            item_filter=item_filter,
        )
        body = {"items_given": items}
    served = await serve(request, ask)
    if served.experiment is not None:
        body["arm"] = served.arm or "interleaved"
    body.update(
        {
            "items": items_json(request, served.items, served.credit),
            "source": served.source,
            "fallback": served.fallback,
            "offset": offset,
            "model_version": served.model.version,
            "recommendation_id": served.recommendation_id,
        }
    )
    return json_response(body)


@routes.get("/static/vendor/{name}")
async def page_asset(request: web.Request) -> web.StreamResponse:
    """The page's charting library: a fixed set of vendored files, cached for a day."""
    asset = PAGE_ASSETS.get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    body, content_type = asset
    return web.Response(
        body=body, content_type=content_type, headers={"Cache-Control": "public, max-age=86400"}
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
    fresh = tuple(request.app[FRESH].events(user))
    served = await serve(request, Ask(kind="user", route="/", n=n, user=user, fresh=fresh))
    return json_response(
        {
            "user_id": user,
            "recommended_items": [s.item for s in served.items],
            "recommendation_id": served.recommendation_id,
        }
    )


@routes.get("/similar")
async def similar(request: web.Request) -> web.Response:
    """Items similar to ``item`` as the model family sees them (``score``: ALS's cosine of the
    factors; an item-item family's similarity)."""
    item, n = id_param(request, "item"), n_param(request)
    pipeline = pipeline_or_503(request)
    ask = Ask(
        kind="similar", route="/similar", n=n, items=(item,), item_filter=filter_params(request)
    )
    serving = request.app[SERVING]
    if pipeline.model.approximate:  # a large catalogue: scoring every item is for a thread
        served = await asyncio.to_thread(serving.similar, ask, pipeline)
    else:
        served = serving.similar(ask, pipeline)
    if served is None:
        raise not_found("item", item)
    return json_response(
        {
            "item": item,
            "items": items_json(request, served.items),
            "model_version": served.model.version,
            "recommendation_id": served.recommendation_id,
        }
    )


@routes.get("/popular")
async def popular(request: web.Request) -> web.Response:
    """The most popular items (``score``: events in the window; ``recent``: recency-weighted)."""
    n, offset = n_param(request), _offset(request)
    ask = Ask(
        kind="popular",
        route="/popular",
        n=n,
        offset=offset,
        recent=bool_param(request, "recent", default=False),
        item_filter=filter_params(request),
    )
    served = await serve(request, ask)
    return json_response(
        {
            "items": items_json(request, served.items),
            "offset": offset,
            "model_version": served.model.version,
            "recommendation_id": served.recommendation_id,
        }
    )
