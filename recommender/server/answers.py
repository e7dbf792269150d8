"""The answering routes: ``/recommend`` (users, fresh users, anonymous sessions, experiments),
the seed's ``/``, ``/similar`` and ``/popular``; what every answer shares: the catalogue's rules
and filters, batched scoring, and an exposure logged under the answer's recommendation id."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import web

from ..items import ItemFilter
from ..online.experiments import ab_arm
from ..serving.model import Answer, Query, RecommenderModel, ScoredItem
from .experiments import ExperimentAnswer, experiments_of
from .exposures import exposures_of
from .new_items import new_item_scores, similar_with_new_items, with_new_items
from .page import INDEX_HTML
from .state import BATCHER, CATALOG, CONFIG, FRESH, FRESH_ITEMS, HOLDER, METRICS
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
    "answer_query",
    "items_json",
    "log_exposure",
    "model_or_503",
    "n_param",
    "not_found",
    "routes",
    "shown_columns",
]

routes = web.RouteTableDef()
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def model_or_503(request: web.Request) -> RecommenderModel:
    model = request.app[HOLDER].model
    if model is None:
        raise web.HTTPServiceUnavailable(
            text='{"error": "model_not_ready", "message": "no snapshot has been loaded yet; '
            'is the model builder running and has it retrained once?"}',
            content_type="application/json",
        )
    return model


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


def items_json(request: web.Request, items: Sequence[ScoredItem]) -> list[dict[str, Any]]:
    catalog = request.app[CATALOG]
    out = []
    for scored in items:
        entry: dict[str, Any] = {"item": scored.item, "score": scored.score}
        metadata = catalog.get(scored.item)
        if metadata is not None:
            entry["metadata"] = metadata
        out.append(entry)
    return out


def shown_columns(
    request: web.Request, model: RecommenderModel, item_filter: ItemFilter | None = None
) -> tuple[IntArray, IntArray | None]:
    """(columns never to answer: hidden, deleted, expired, not yet available, outside the
    catalogue with --catalog-only, in an excluded category; the only columns allowed by a
    category or label filter, or None)."""
    return request.app[CATALOG].columns(
        model.version,
        model.item_index,
        item_filter,
        catalog_only=request.app[CONFIG].catalog_only,
    )


async def answer_query(
    request: web.Request,
    model: RecommenderModel,
    query: Query,
    item_filter: ItemFilter | None = None,
    seen: frozenset[str] = frozenset(),
) -> Answer:
    """Score (batched with concurrent requests) and pick the top items of a query, as the
    catalogue allows."""
    excluded, allowed = shown_columns(request, model, item_filter)
    if allowed is not None and allowed.size * 4 > model.n_items:
        # A wide filter: the usual path (graph or batched product) without the rest.
        excluded = np.union1d(excluded, np.setdiff1d(np.arange(model.n_items), allowed))
        allowed = None
    scores = None
    key = query.vector if query.vector is not None else query.history
    if key is not None and not model.approximate and allowed is None:
        # Exact scoring reads the whole model: share that read with concurrent requests.
        scores = await request.app[BATCHER].score(model, key)
    scores, new_scores = new_item_scores(request.app[FRESH_ITEMS].view, model, query, scores)
    answer = model.answer(query, scores, excluded=excluded, allowed=allowed)
    answer = with_new_items(request, model, query, answer, item_filter, seen, new_scores)
    metrics = request.app[METRICS]
    metrics.answers.labels(answer.source).inc()
    if answer.fallback:
        metrics.fallbacks.inc()
    return answer


@routes.get("/recommend")
async def recommend(request: web.Request) -> web.Response:
    """Top-n for a user (``user=``) or for an anonymous list of items (``items=``)."""
    has_user, has_items = "user" in request.query, "items" in request.query
    if has_user == has_items:
        bad_parameter("user", "give exactly one of user= or items=")
    n, offset = n_param(request), _offset(request)
    exclude = id_list_param(request, "exclude")
    filter_seen = bool_param(request, "filter_seen", default=True)
    item_filter = filter_params(request)
    body: dict[str, Any]
    if has_user:
        user = id_param(request, "user")
        model = model_or_503(request)
        fresh = request.app[FRESH].events(user)
        options: dict[str, Any] = {
            "filter_seen": filter_seen,
            "exclude": exclude,
            "offset": offset,
            "fresh": fresh,
        }
        body = {"user": user, "fresh_events": len(fresh)}
        tried = (
            await _in_experiment(request, model, user, n, options, item_filter)
            if not offset
            else None
        )
        if tried is not None:
            answer = tried.answer
            rec_id = exposures_of(request.app).record(
                route="/recommend",
                items=[s.item for s in answer.items],
                model_version=model.version,
                family=model.family,
                user=user,
                arm=tried.arm,
                credit=tried.credit,
                experiment=tried.spec.id,
                challenger_version=tried.challenger_version,
                recommendation_id=tried.recommendation_id,
            )
            body["arm"] = tried.arm or "interleaved"
        else:
            query = model.query_for_user(user, n, **options)
            seen = frozenset(exclude) | (
                frozenset(i for i, _ in fresh) if filter_seen else frozenset()
            )
            answer = await answer_query(request, model, query, item_filter, seen)
            rec_id = log_exposure(request, "/recommend", answer.items, model, user=user)
    else:
        items = id_list_param(request, "items")
        if not items:
            bad_parameter("items", "must list at least one item")
        model = model_or_503(request)
        query = model.query_for_items(items, n, exclude=exclude, offset=offset)
        body = {"items_given": items}
        seen = frozenset(items) | frozenset(exclude)
        answer = await answer_query(request, model, query, item_filter, seen)
        rec_id = log_exposure(request, "/recommend", answer.items, model, session=items)
    body.update(
        {
            "items": items_json(request, answer.items),
            "source": answer.source,
            "fallback": answer.fallback,
            "offset": offset,
            "model_version": model.version,
            "recommendation_id": rec_id,
        }
    )
    return json_response(body)


async def _in_experiment(
    request: web.Request,
    champion: RecommenderModel,
    user: str,
    n: int,
    options: dict[str, Any],
    item_filter: ItemFilter | None,
) -> ExperimentAnswer | None:
    """The answer of the running experiment for ``user``, or None outside one."""
    experiments = experiments_of(request.app)
    spec, challenger = experiments.current(), experiments.challenger.model
    if spec is None or challenger is None:
        return None
    arms: dict[str, RecommenderModel] = {"champion": champion, "challenger": challenger}
    wanted = [ab_arm(spec, user)] if spec.mode == "ab" else list(arms)
    answers = {}
    for arm in wanted:
        used = arms[arm]
        query = used.query_for_user(user, n, **options)
        answers[arm] = await answer_query(request, used, query, item_filter)
    return experiments.answer(champion, user, answers, n)


def log_exposure(
    request: web.Request,
    route: str,
    items: Sequence[ScoredItem],
    model: RecommenderModel,
    *,
    user: str | None = None,
    session: Sequence[str] = (),
) -> str:
    """The answer's recommendation id (its exposure logged, when a topic is set)."""
    return exposures_of(request.app).record(
        route=route,
        items=[s.item for s in items],
        model_version=model.version,
        family=model.family,
        user=user,
        session=session,
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
    model = model_or_503(request)
    query = model.query_for_user(user, n, fresh=request.app[FRESH].events(user))
    answer = await answer_query(request, model, query)
    rec_id = log_exposure(request, "/", answer.items, model, user=user)
    return json_response(
        {
            "user_id": user,
            "recommended_items": [s.item for s in answer.items],
            "recommendation_id": rec_id,
        }
    )


@routes.get("/similar")
async def similar(request: web.Request) -> web.Response:
    item, n = id_param(request, "item"), n_param(request)
    model = model_or_503(request)
    item_filter = filter_params(request)
    excluded, allowed = shown_columns(request, model, item_filter)
    similar_of = functools.partial(
        similar_with_new_items, request, model, item_filter, excluded, allowed
    )
    if model.approximate:  # a large catalogue: scoring every item is for a thread
        found = await asyncio.to_thread(similar_of, item, n)
    else:
        found = similar_of(item, n)
    if found is None:
        raise not_found("item", item)
    rec_id = log_exposure(request, "/similar", found, model, session=[item])
    return json_response(
        {
            "item": item,
            "items": items_json(request, found),
            "model_version": model.version,
            "recommendation_id": rec_id,
        }
    )


@routes.get("/popular")
async def popular(request: web.Request) -> web.Response:
    n, offset = n_param(request), _offset(request)
    recent = bool_param(request, "recent", default=False)
    model = model_or_503(request)
    excluded, allowed = shown_columns(request, model, filter_params(request))
    items = model.popular(n, offset=offset, recent=recent, excluded=excluded, allowed=allowed)
    return json_response(
        {
            "items": items_json(request, items),
            "offset": offset,
            "model_version": model.version,
            "recommendation_id": log_exposure(request, "/popular", items, model),
        }
    )
