"""HTTP handlers. Every parameter is validated (400 names it); every answer is JSON."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from ..model import Answer, Query, RecommenderModel, ScoredItem
from ..online.experiments import ab_arm
from ..status import builder_summary, online_summary
from .experiments import ExperimentAnswer, experiments_of
from .exposures import exposures_of
from .ingest import (
    MAX_EVENTS_PER_REQUEST,
    BodyError,
    Ingest,
    decode_body,
    recommendation_ids,
)
from .openapi import openapi_document
from .page import INDEX_HTML
from .state import BATCHER, CATALOG, CONFIG, FRESH, HOLDER, INGEST, METRICS
from .validation import (
    bad_parameter,
    bool_param,
    check_id,
    id_list_param,
    id_param,
    int_param,
    json_error,
    json_response,
    text_param,
)

__all__ = ["answer_query", "routes"]

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


def _not_found(what: str, value: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(
        text=json_error(404, f"unknown_{what}", f"the model does not know {what} {value!r}").text,
        content_type="application/json",
    )


def _n(request: web.Request) -> int:
    config = request.app[CONFIG]
    return int_param(request, "n", default=config.default_n, minimum=1, maximum=config.max_n)


def _offset(request: web.Request) -> int:
    return int_param(request, "offset", default=0, minimum=0, maximum=request.app[CONFIG].max_n)


def _items_json(request: web.Request, items: Sequence[ScoredItem]) -> list[dict[str, Any]]:
    catalog = request.app[CATALOG]
    out = []
    for scored in items:
        entry: dict[str, Any] = {"item": scored.item, "score": scored.score}
        metadata = catalog.get(scored.item)
        if metadata is not None:
            entry["metadata"] = metadata
        out.append(entry)
    return out


async def answer_query(request: web.Request, model: RecommenderModel, query: Query) -> Answer:
    """Score (batched with concurrent requests) and pick the top items of a query."""
    config = request.app[CONFIG]
    excluded = None
    if config.catalog_only:
        excluded = request.app[CATALOG].excluded_columns(model.version, model.item_index)
    scores = None
    key = query.vector if query.vector is not None else query.history
    if key is not None and not model.approximate:
        # Exact scoring reads the whole model: share that read with concurrent requests.
        scores = await request.app[BATCHER].score(model, key)
    answer = model.answer(query, scores, excluded=excluded)
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
    n, offset = _n(request), _offset(request)
    exclude = id_list_param(request, "exclude")
    filter_seen = bool_param(request, "filter_seen", default=True)
    body: dict[str, Any]
    if has_user:
        user = id_param(request, "user")
        model = _model_or_503(request)
        fresh = request.app[FRESH].events(user)
        options: dict[str, Any] = {
            "filter_seen": filter_seen,
            "exclude": exclude,
            "offset": offset,
            "fresh": fresh,
        }
        body = {"user": user, "fresh_events": len(fresh)}
        tried = await _in_experiment(request, model, user, n, options) if not offset else None
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
            answer = await answer_query(request, model, model.query_for_user(user, n, **options))
            rec_id = log_exposure(request, "/recommend", answer.items, model, user=user)
    else:
        items = id_list_param(request, "items")
        if not items:
            bad_parameter("items", "must list at least one item")
        model = _model_or_503(request)
        query = model.query_for_items(items, n, exclude=exclude, offset=offset)
        body = {"items_given": items}
        answer = await answer_query(request, model, query)
        rec_id = log_exposure(request, "/recommend", answer.items, model, session=items)
    body.update(
        {
            "items": _items_json(request, answer.items),
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
        answers[arm] = await answer_query(request, used, used.query_for_user(user, n, **options))
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
    model = _model_or_503(request)
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
    item, n = id_param(request, "item"), _n(request)
    model = _model_or_503(request)
    if model.approximate:  # a large catalogue: scoring every item is for a thread
        found = await asyncio.to_thread(model.similar_items, item, n)
    else:
        found = model.similar_items(item, n)
    if found is None:
        raise _not_found("item", item)
    rec_id = log_exposure(request, "/similar", found, model, session=[item])
    return json_response(
        {
            "item": item,
            "items": _items_json(request, found),
            "model_version": model.version,
            "recommendation_id": rec_id,
        }
    )


@routes.get("/similar-users")
async def similar_users(request: web.Request) -> web.Response:
    user, n = id_param(request, "user"), _n(request)
    model = _model_or_503(request)
    if not model.has_user_vectors:
        bad_parameter(
            "user",
            f"the serving model ({model.family}) has no user vectors, so no similar users; "
            "ask /similar for similar items",
        )
    found = model.similar_users(user, n)
    if found is None:
        raise _not_found("user", user)
    return json_response(
        {
            "user": user,
            "users": [{"user": s.item, "score": s.score} for s in found],
            "model_version": model.version,
        }
    )


@routes.get("/popular")
async def popular(request: web.Request) -> web.Response:
    n, offset = _n(request), _offset(request)
    recent = bool_param(request, "recent", default=False)
    model = _model_or_503(request)
    items = model.popular(n, offset=offset, recent=recent)
    return json_response(
        {
            "items": _items_json(request, items),
            "offset": offset,
            "model_version": model.version,
            "recommendation_id": log_exposure(request, "/popular", items, model),
        }
    )


@routes.get("/because")
async def because(request: web.Request) -> web.Response:
    user, item, n = id_param(request, "user"), id_param(request, "item"), _n(request)
    model = _model_or_503(request)
    explained = model.explain(user, item, n, fresh=request.app[FRESH].events(user))
    if explained is None:
        if item not in model.item_index:
            raise _not_found("item", item)
        raise _not_found("user", user)
    score, contributions = explained
    catalog = request.app[CATALOG]
    return json_response(
        {
            "user": user,
            "item": item,
            "score": score,
            "because": [
                {
                    "item": c.item,
                    "contribution": c.contribution,
                    **({"metadata": m} if (m := catalog.get(c.item)) else {}),
                }
                for c in contributions
            ],
            "model_version": model.version,
        }
    )


@routes.get("/users/{user}/items")
async def user_items(request: web.Request) -> web.Response:
    user = check_id("user", request.match_info["user"])
    model = _model_or_503(request)
    window = [{"item": i, "weight": w} for i, w in model.seen_items(user)]
    fresh = [{"item": i, "weight": w} for i, w in request.app[FRESH].events(user)]
    return json_response(
        {
            "user": user,
            "known_to_model": model.knows_user(user),
            "window": window,
            "fresh": fresh,
            "model_version": model.version,
        }
    )


@routes.get("/items")
async def search_items(request: web.Request) -> web.Response:
    q = text_param(request, "q", max_length=200)
    n = _n(request)
    forgiving = request.query.get("match", "substring")
    if forgiving not in ("substring", "forgiving"):
        bad_parameter("match", f"must be substring or forgiving, got {forgiving!r}")
    catalog = request.app[CATALOG]
    # A catalogue scan: in a thread, so a large catalogue never stalls the event loop.
    search = catalog.match if forgiving == "forgiving" else catalog.search
    found = await asyncio.to_thread(search, q, n) if len(catalog) > 20_000 else search(q, n)
    return json_response({"q": q, "items": found, "catalog_size": len(catalog)})


@routes.post("/interactions")
async def post_interactions(request: web.Request) -> web.Response:
    ingest = request.app.get(INGEST)
    if not isinstance(ingest, Ingest):
        return json_error(
            403,
            "ingest_disabled",
            "POST /interactions is off; start the server with --enable-ingest",
        )
    body = await request.read()
    try:
        entries = decode_body(request.content_type, body)
    except BodyError as exc:
        return json_error(400, "bad_body", str(exc))
    if len(entries) > MAX_EVENTS_PER_REQUEST:
        return json_error(413, "too_many_events", f"at most {MAX_EVENTS_PER_REQUEST} a request")
    if not entries:
        return json_error(400, "bad_body", "no events in the body")
    try:
        model = request.app[HOLDER].model
        result = await ingest.submit(
            entries,
            ratings=None if model is None else model.ratings,
            recommendation_ids=recommendation_ids(request.content_type, body),
        )
    except (TimeoutError, RuntimeError, BufferError) as exc:
        return json_error(503, "kafka_unavailable", f"events were not delivered to Kafka: {exc}")
    metrics = request.app[METRICS]
    metrics.ingested.labels("accepted").inc(result.accepted)
    metrics.ingested.labels("rejected").inc(len(result.rejected))
    # 200 once the body is processed, even if every event was rejected: the body says which
    # and why, so a batch with some bad events is not retried whole.
    return json_response(
        {
            "accepted": result.accepted,
            "rejected": len(result.rejected),
            "errors": result.rejected[:100],
        }
    )


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    model = request.app[HOLDER].model
    if model is None:
        return json_error(503, "model_not_ready", "no snapshot has been loaded yet")
    return json_response({"status": "ready", "model_version": model.version})


@routes.get("/model")
async def model_info(request: web.Request) -> web.Response:
    model = _model_or_503(request)
    holder = request.app[HOLDER]
    stats = request.app[FRESH].stats()
    return json_response(
        {
            "manifest": model.manifest,
            "loaded_at": holder.loaded_at,
            "users": model.n_users,
            "items": model.n_items,
            "family": model.family,
            "factors": model.factors,
            "has_user_vectors": model.has_user_vectors,
            "fresh": {"users": stats.users, "events": stats.events},
            "catalog_items": len(request.app[CATALOG]),
            "builder_status": holder.builder_status,
        }
    )


@routes.get("/status")
async def status(request: web.Request) -> web.Response:
    """A summary for people and the live page: model, window, fresh events, errors."""
    model = request.app[HOLDER].model
    metrics = request.app[METRICS]
    fresh = request.app[FRESH].stats()
    followed = "recommender_followed_events_total"
    summary: dict[str, Any] = {}
    builder: dict[str, Any] = {}
    if model is not None:
        manifest = model.manifest
        window = manifest.get("window", {})
        builder = manifest.get("builder", {})
        lo, hi = window.get("min_timestamp_ms"), window.get("max_timestamp_ms")
        summary = {
            "version": model.version,
            "created_at": manifest.get("created_at"),
            "age_seconds": time.time() - float(manifest.get("created_at", time.time())),
            "events": window.get("events"),
            "users": model.n_users,
            "items": model.n_items,
            "span_seconds": (hi - lo) / 1000 if lo is not None and hi is not None else None,
            "training_seconds": manifest.get("training_seconds"),
            "family": model.family,
        }
    return json_response(
        {
            "now": time.time(),
            "model": summary,
            **builder_summary(
                model.manifest if model is not None else None, request.app[HOLDER].builder_status
            ),
            "fresh": {"users": fresh.users, "events": fresh.events},
            "following": request.app[CONFIG].kafka is not None,
            "followed_events": metrics.total(followed, outcome="fresh")
            + metrics.total(followed, outcome="covered"),
            "catalog_items": len(request.app[CATALOG]),
            "ingest_enabled": request.app[CONFIG].enable_ingest,
            "latency_p99_ms": metrics.recent_p99_ms(),
            "online": online_summary(
                request.app[HOLDER].online_status,
                model.n_items if model is not None else 0,
                logging_to=exposures_of(request.app).topic,
                experiment=experiments_of(request.app).status(request.app[HOLDER].online_status),
            ),
            "errors": {
                "malformed_events": metrics.total(followed, outcome="malformed")
                + sum(builder.get("rejected", {}).values()),
                "rejected_snapshots": metrics.total("recommender_model_swap_failures_total"),
                "failed_retrains": builder.get("retrains_failed", 0),
            },
        }
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(request.app[CONFIG].max_n))
