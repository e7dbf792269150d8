"""HTTP handlers. Every parameter is validated (400 names it); every answer is JSON."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import web

from ..serving.query import Ask
from ..status import builder_summary, online_summary, ranker_summary
from .answers import model_or_503, n_param, not_found
from .experiments import experiments_of
from .exposures import exposures_of
from .ingest import (
    MAX_EVENTS_PER_REQUEST,
    BodyError,
    Ingest,
    decode_body,
    recommendation_ids,
)
from .openapi import openapi_document
from .state import CATALOG, CONFIG, COVERAGE, FRESH, HOLDER, INGEST, METRICS
from .validation import (
    bad_parameter,
    check_id,
    id_param,
    json_error,
    json_response,
    text_param,
)

__all__ = ["routes"]

routes = web.RouteTableDef()
IntArray = npt.NDArray[np.int64]


@routes.get("/similar-users")
async def similar_users(request: web.Request) -> web.Response:
    user, n = id_param(request, "user"), n_param(request)
    model = model_or_503(request)
    if not model.has_user_vectors:
        bad_parameter(
            "user",
            f"the serving model ({model.family}) has no user vectors, so no similar users; "
            "ask /similar for similar items",
        )
    found = model.similar_users(user, n)
    if found is None:
        raise not_found("user", user)
    return json_response(
        {
            "user": user,
            "users": [{"user": s.item, "score": s.score} for s in found],
            "model_version": model.version,
        }
    )


@routes.get("/because")
async def because(request: web.Request) -> web.Response:
    user, item, n = id_param(request, "user"), id_param(request, "item"), n_param(request)
    model = model_or_503(request)
    explained = model.explain(user, item, n, fresh=request.app[FRESH].events(user))
    if explained is None:
        if item not in model.item_index:
            raise not_found("item", item)
        raise not_found("user", user)
    score, contributions = explained
    catalog = request.app[CATALOG]
    ranker = request.app[HOLDER].pipeline_ranker()
    ranked = None
    if ranker is not None:  # which features lifted the item (the ranking stage's say)
        ask = Ask(kind="user", route="/because", n=1, user=user,
                  fresh=tuple(request.app[FRESH].events(user)))  # fmt: skip
        ranked = await asyncio.to_thread(ranker.explain, ask, item)
    return json_response(
        {
            "user": user,
            "item": item,
            "score": score,
            **({"ranker": ranked} if ranked is not None else {}),
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
    model = model_or_503(request)
    catalog = request.app[CATALOG]

    def entry(item: str, weight: float) -> dict[str, Any]:
        title = (catalog.get(item) or {}).get("title")
        return {"item": item, "weight": weight, **({"title": title} if title else {})}

    window = [entry(i, w) for i, w in model.seen_items(user)]
    fresh = [entry(i, w) for i, w in request.app[FRESH].events(user)]
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
    n = n_param(request)
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
    behind = request.app[COVERAGE].catching_up()
    if behind:  # hidden items could still be shown: not ready for traffic
        return json_error(503, "catching_up", f"{behind}; answers would not be right yet")
    return json_response({"status": "ready", "model_version": model.version})


@routes.get("/model")
async def model_info(request: web.Request) -> web.Response:
    model = model_or_503(request)
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
            "ranker": ranker_summary(manifest, request.app[HOLDER].ranker_problem),
        }
    return json_response(
        {
            "now": time.time(),
            "model": summary,
            **builder_summary(
                model.manifest if model is not None else None, request.app[HOLDER].builder_status
            ),
            "fresh": {"users": fresh.users, "events": fresh.events},
            "new_items": request.app[HOLDER].new_items.counts(),
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
                "server_errors": metrics.totals("recommender_server_errors_total", "route"),
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
