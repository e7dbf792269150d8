"""The seed-001 chat API, so its existing bots can point at this server.

- ``POST /register {"chat_id"}`` -> ``{"exists": 1}`` if the user is known (in the model, with
  fresh events, or registered before), else registers them and answers ``{"exists": 0}``.
- ``POST /get_unrated_movie {"chat_id"}`` -> ``{"id", "title", "url"}``: an item worth asking
  about (see :meth:`ChatState.pick_unrated`).
- ``POST /rate_movie {"chat_id", "movie_id" | "movieId", "rating"}`` -> ``{"status": "success"}``:
  the rating (1 to 5, as a number or a string; 0 = "I don't know it", nothing recorded) becomes an
  event through Kafka, as ``POST /interactions`` does (needs ``--enable-ingest``).
- ``POST /recommend {"chat_id", "top_n"}`` -> ``{"movies": [{"id", "title", "url"}]}``: empty
  until the user has ``--min-ratings`` ratings (10), as the seed specifies; rated items never
  come back.

Chat ids arrive as JSON numbers or strings. Ratings are on the seed's 1..5 scale unless the body
says otherwise (``"scale": "1..10"``, for the anime flow); they are converted linearly onto the
rating scale the builder declared (``--ratings``), or, without one, into weights as ``1..5`` maps
them (1 -> -2, a dislike; 3 -> 0, seen; 5 -> +2). Registrations (shared by ``--workers``) and
the "asked recently" memory (per process) are bounded by memory (:mod:`.chat_state`); a restart
forgets them, which costs nothing: a user with events is known from Kafka.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final, cast

import numpy as np
from aiohttp import web

from ..errors import ConfigError
from ..events import format_event
from ..items import ItemFilter
from ..online.exposures import new_recommendation_id
from ..ratings import RatingScale
from ..serving.model import RecommenderModel
from ..serving.query import Ask
from .answers import serve
from .chat_state import AnswerMemory, AskedMemory, Registrations
from .ingest import Ingest
from .state import CATALOG, CHAT, CONFIG, FRESH, HOLDER, INGEST
from .validation import id_problem, json_error, json_response

__all__ = ["ChatState", "routes"]

routes = web.RouteTableDef()

SEED_SCALE: Final = RatingScale.parse("1..5")
MAX_CHAT_BODY: Final = 16 * 1024
_POPULAR_POOL: Final = 300  # "popular enough to be recognised": the window's most popular items
_PERSONAL_POOL: Final = 100
_SAMPLE_POOL: Final = 1000


class BadRequest(Exception):
    """A body the seed API cannot use; the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ChatState:
    """Registrations (bounded, shared by worker processes) and recently asked items (per
    process, bounded): see :mod:`.chat_state`."""

    def __init__(
        self,
        *,
        registrations: Registrations | None = None,
        asked: AskedMemory | None = None,
        seed: int = 0,
        attribution_window_s: float = 1800.0,
    ) -> None:
        self.registrations = registrations or Registrations()
        self.asked = asked or AskedMemory()
        self.answers = AnswerMemory(window_s=attribution_window_s)
        self._rng = np.random.default_rng(seed)

    def register(self, user: str) -> bool:
        """Register ``user``; returns whether they were registered already."""
        return self.registrations.register(user)

    def pick_unrated(
        self, model: RecommenderModel, user: str, fresh: list[tuple[str, float]], allowed: Any
    ) -> str | None:
        """An item the user has not rated, worth asking about: among the window's most popular
        items (recognisable), preferring what the model predicts they know (their personal top,
        when the model can place them), never one asked recently; drawn at random with weights
        that favour popular items (some exploration)."""
        seen = {item for item, _ in model.seen_items(user)} | {item for item, _ in fresh}
        recent = self.asked.recent(user)
        popular = [s.item for s in model.popular(_POPULAR_POOL)]
        personal: list[str] = []
        if seen:
            query = model.query_for_user(user, _PERSONAL_POOL, fresh=fresh)
            if query.scored:
                recognisable = set(popular)
                personal = [s.item for s in model.answer(query).items if s.item in recognisable]
        for pool in (personal, popular, None):
            if pool is None:
                # Past the popular items, a random sample of the catalogue: never a Python loop
                # over every item on the event loop (1M items took a third of a second).
                size = min(model.n_items, _SAMPLE_POOL)
                pool = [
                    model.item_ids[int(k)]
                    for k in self._rng.choice(model.n_items, size, replace=False)
                ]
            candidates = [i for i in pool if i not in seen and i not in recent and allowed(i)]
            if candidates:
                ranks = np.arange(1, len(candidates) + 1, dtype=np.float64)
                weights = 1.0 / np.sqrt(ranks)
                pick = candidates[int(self._rng.choice(len(candidates), p=weights / weights.sum()))]
                self.asked.add(user, pick)
                return pick
        return None


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.content.read(MAX_CHAT_BODY + 1)
    if len(raw) > MAX_CHAT_BODY:
        raise BadRequest("body", f"the body is over {MAX_CHAT_BODY} bytes")
    try:
        body = json.loads(raw or b"null")
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("body", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body", "the body must be a JSON object")
    return body


def _chat_filter(body: dict[str, Any]) -> ItemFilter | None:
    """``"category"`` and ``"exclude_category"`` (a string or a list of strings) of a body."""
    found: dict[str, frozenset[str]] = {}
    for name in ("category", "exclude_category"):
        value = body.get(name)
        if value is None:
            found[name] = frozenset()
            continue
        values = [value] if isinstance(value, str) else value
        if (
            not isinstance(values, list)
            or len(values) > 32
            or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in values)
        ):
            raise BadRequest(name, f"{name} must be a string or a list of at most 32 strings")
        found[name] = frozenset(values)
    if not (found["category"] or found["exclude_category"]):
        return None
    return ItemFilter(found["category"], found["exclude_category"])


def _chat_id(body: dict[str, Any], name: str = "chat_id") -> str:
    value = body.get(name)
    if isinstance(value, bool) or value is None:
        raise BadRequest(name, f"{name} is required (a number or a string)")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise BadRequest(name, f"{name} must be an integer or a string")
        value = int(value)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise BadRequest(name, f"{name} must be a number or a string")
    problem = id_problem(value)
    if problem:
        raise BadRequest(name, f"{name}: {problem}")
    return value


def _rating(body: dict[str, Any]) -> float:
    value = body.get("rating")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise BadRequest("rating", f"rating must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest("rating", "rating is required: a number (0 = I don't know it)")
    return float(value)


def _input_scale(body: dict[str, Any]) -> RatingScale:
    spec = body.get("scale", "1..5")
    if not isinstance(spec, str):
        raise BadRequest("scale", "scale must be a string such as 1..10")
    try:
        return RatingScale.parse(spec)
    except ConfigError as exc:
        raise BadRequest("scale", str(exc)) from None


def event_for_rating(
    user: str, item: str, rating: float, given: RatingScale, declared: RatingScale | None
) -> bytes:
    """The wire event for ``rating`` on scale ``given``: converted linearly onto the declared
    scale (the builder and server map it), or into a weight as ``given`` maps it."""
    if declared is None:
        weight = given.weight(rating)
        assert weight is not None
        return format_event(user, item, weight)
    share = (rating - given.low) / (given.high - given.low)
    return format_event(user, item, round(declared.low + share * (declared.high - declared.low), 6))


def _model(request: web.Request) -> RecommenderModel:
    model = request.app[HOLDER].model
    if model is None:
        raise web.HTTPServiceUnavailable(
            text=json_error(503, "model_not_ready", "no snapshot has been loaded yet").text,
            content_type="application/json",
        )
    return model


def _metadata(request: web.Request, item: str) -> dict[str, Any]:
    meta = request.app[CATALOG].get(item) or {}
    title = meta.get("title")
    url = meta.get("url")
    return {
        "id": item,
        "title": str(title) if title is not None else item,
        "url": str(url) if url is not None else None,
    }


def _chat(request: web.Request) -> ChatState:
    return cast(ChatState, request.app[CHAT])


def _ratings_count(model: RecommenderModel, user: str, fresh: list[tuple[str, float]]) -> int:
    return len({item for item, _ in model.seen_items(user)} | {item for item, _ in fresh})


def _handle(handler: Any) -> Any:
    """Turn BadRequest into a 400 with a JSON body naming the field."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadRequest as exc:
            return json_error(400, "bad_body", str(exc), parameter=exc.field)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


@routes.post("/register")
@_handle
async def register(request: web.Request) -> web.Response:
    user = _chat_id(await _body(request))
    model = request.app[HOLDER].model
    known = bool(request.app[FRESH].events(user)) or (model is not None and model.knows_user(user))
    registered = _chat(request).register(user)
    return json_response({"exists": int(known or registered)})


@routes.post("/get_unrated_movie")
@_handle
async def get_unrated_movie(request: web.Request) -> web.Response:
    user = _chat_id(await _body(request))
    model = _model(request)
    catalog = request.app[CATALOG]
    restrict = len(catalog) > 0  # with a catalogue, only ask about items people can recognise
    pick = _chat(request).pick_unrated(
        model,
        user,
        request.app[FRESH].events(user),
        (lambda item: catalog.get(item) is not None and catalog.shown(item))
        if restrict
        else catalog.shown,
    )
    if pick is None:
        return json_error(404, "nothing_to_ask", "every item the model knows is rated already")
    return json_response(_metadata(request, pick))


@routes.post("/rate_movie")
@_handle
async def rate_movie(request: web.Request) -> web.Response:
    body = await _body(request)
    user = _chat_id(body)
    item_key = "movie_id" if "movie_id" in body else "movieId"
    item = _chat_id(body, item_key)
    rating = _rating(body)
    given = _input_scale(body)
    if rating == 0:  # "I don't know this movie": nothing to record
        return json_response({"status": "success", "recorded": False})
    if not given.low <= rating <= given.high:
        raise BadRequest(
            "rating", f"rating must be 0 or from {given.low:g} to {given.high:g}, got {rating:g}"
        )
    ingest = request.app.get(INGEST)
    if not isinstance(ingest, Ingest):
        return json_error(403, "ingest_disabled", "rating needs the server's --enable-ingest")
    model = request.app[HOLDER].model
    declared = None if model is None else model.ratings
    event = event_for_rating(user, item, rating, given, declared)
    named = _chat(request).answers.named(user, item)  # the chat answer that showed it
    try:
        result = await ingest.submit([event], ratings=declared, recommendation_ids=[named])
    except (TimeoutError, RuntimeError, BufferError) as exc:
        return json_error(503, "kafka_unavailable", f"the rating was not delivered: {exc}")
    if result.rejected:
        raise BadRequest("rating", f"the rating was refused: {result.rejected[0]['reason']}")
    return json_response({"status": "success", "recorded": True})


@routes.post("/recommend")
@_handle
async def recommend_for_chat(request: web.Request) -> web.Response:
    body = await _body(request)
    user = _chat_id(body)
    config = request.app[CONFIG]
    top_n = body.get("top_n", config.default_n)
    if isinstance(top_n, str) and top_n.strip().isdigit():
        top_n = int(top_n)
    if isinstance(top_n, bool) or not isinstance(top_n, int) or not 1 <= top_n <= config.max_n:
        raise BadRequest("top_n", f"top_n must be an integer from 1 to {config.max_n}")
    model = _model(request)
    fresh = request.app[FRESH].events(user)
    count = _ratings_count(model, user, fresh)
    if count < config.min_ratings:  # as the seed specifies; the counts are for our own bot
        return json_response(
            {
                "movies": [],
                "ratings": count,
                "needed": config.min_ratings,
                "recommendation_id": new_recommendation_id(),  # nothing shown: nothing logged
            }
        )
    ask = Ask(
        kind="user",
        route="/recommend (chat)",
        n=top_n,
        user=user,
        item_filter=_chat_filter(body),
        fresh=tuple(fresh),
    )
    served = await serve(request, ask)
    rec_id = served.recommendation_id
    _chat(request).answers.remember(user, rec_id, [s.item for s in served.items])
    movies = [_metadata(request, s.item) for s in served.items]
    return json_response(
        {
            "movies": movies,
            "ratings": count,
            "needed": config.min_ratings,
            "recommendation_id": rec_id,
        }
    )
