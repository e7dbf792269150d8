"""The OpenAPI 3 description of the HTTP API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..events import MAX_WEIGHT, MIN_WEIGHT

__all__ = ["openapi_document"]

_ID = "[^,:\\x00-\\x1f\\x7f]{1,256}"
ID = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": f"^{_ID}$"}
# In events, ids are limited to 256 UTF-8 bytes: 64 characters always fit.
_EVENT_ID = "[^,:\\x00-\\x1f\\x7f]{1,64}"
EVENT_ID = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": f"^{_EVENT_ID}$"}
EVENT_LINES = {"type": "string", "minLength": 1, "pattern": "[^\\s]"}
ID_LIST = {
    "type": "string",
    "minLength": 1,
    "maxLength": 2000,
    "pattern": f"^{_ID}(,{_ID})*$",
}


def _param(
    name: str, schema: dict[str, Any], description: str, *, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


ERRORS = {
    "400": _json("Error", "A parameter is invalid; the body names it"),
    "401": _json("Error", "A bearer token is required (see --api-token)"),
    "503": _json("Error", "No model is loaded yet"),
}


CHAT_ID = {
    "oneOf": [{"type": "integer"}, ID],
    "description": "The chat's id: a JSON number or string",
}
_SEED_ERRORS = {
    "400": _json("Error", "The body is not a JSON object of the documented fields"),
    "401": _json("Error", "A bearer token is required (see --api-token)"),
    "503": _json("Error", "No model is loaded yet, or Kafka did not confirm delivery"),
}


def _seed_post(
    summary: str, fields: dict[str, Any], required: list[str], ok: str, *extra: str
) -> dict[str, Any]:
    responses = {"200": _json(ok, "Success"), **_SEED_ERRORS}
    for code in extra:
        responses[code] = _json("Error", "See the message")
    return {
        "summary": summary,
        "security": [{"bearer": []}, {}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "required": required, "properties": fields}
                }
            },
        },
        "responses": responses,
    }


def _seed_paths() -> dict[str, Any]:
    """The seed-001 chat API (see recommender/server/seed_api.py)."""
    return {
        "/register": {
            "post": _seed_post(
                "Seed-001 API: register a chat user", {"chat_id": CHAT_ID}, ["chat_id"], "Exists"
            )
        },
        "/get_unrated_movie": {
            "post": _seed_post(
                "Seed-001 API: an item worth asking the user to rate",
                {"chat_id": CHAT_ID},
                ["chat_id"],
                "ChatItem",
                "404",
            )
        },
        "/rate_movie": {
            "post": _seed_post(
                "Seed-001 API: rate an item (1-5; 0 = don't know it; needs --enable-ingest)",
                {
                    "chat_id": CHAT_ID,
                    "movie_id": CHAT_ID,
                    "movieId": CHAT_ID,
                    "rating": {
                        "oneOf": [
                            {"type": "number", "minimum": 0, "maximum": 5},
                            {"type": "string", "pattern": "^[0-5]$"},
                        ]
                    },
                    "scale": {"type": "string", "description": "Default 1..5, e.g. 1..10"},
                },
                ["chat_id", "rating"],
                "RateResult",
                "403",
            )
        },
    }


def openapi_document(max_n: int) -> dict[str, Any]:
    """The API description (``max_n`` is the server's largest allowed ``n``)."""
    n = _param("n", {"type": "integer", "minimum": 1, "maximum": max_n, "default": 10}, "How many")
    offset = _param(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": max_n, "default": 0},
        "Skip this many",
    )
    user = _param("user", ID, "User id", required=True)
    item = _param("item", ID, "Item id", required=True)

    def get(summary: str, params: list[dict[str, Any]], ok: str, *extra: str) -> dict[str, Any]:
        responses = {"200": _json(ok, "Success"), **ERRORS}
        for code in extra:
            responses[code] = _json("Error", "Unknown user or item")
        return {"get": {"summary": summary, "parameters": params, "responses": responses}}

    scored = {
        "type": "object",
        "required": ["item", "score"],
        "properties": {
            "item": {"type": "string"},
            "score": {"type": "number"},
            "metadata": {"type": "object"},
        },
    }
    items_array = {"type": "array", "items": {"$ref": "#/components/schemas/ScoredItem"}}
    chat_item = {
        "type": "object",
        "required": ["id", "title", "url"],
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "url": {"type": "string", "nullable": True},
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "recommender",
            "version": __version__,
            "description": "Streaming recommendations: sliding-window ALS with real-time fold-in.",
        },
        "paths": {
            "/recommend": {
                "get": {
                    "summary": "Top-n items for a user (user=) or an anonymous session (items=)",
                    "parameters": [
                        _param("user", ID, "User id (give user or items, not both)"),
                        _param("items", ID_LIST, "Comma-separated items of an anonymous session"),
                        n,
                        offset,
                        _param("exclude", ID_LIST, "Comma-separated items never to recommend"),
                        _param(
                            "filter_seen",
                            {"type": "boolean", "default": True},
                            "Leave out items the user already has",
                        ),
                    ],
                    "responses": {"200": _json("Recommendations", "Success"), **ERRORS},
                },
                "post": _seed_post(
                    "Seed-001 API: top_n for a chat user ({movies: []} below --min-ratings)",
                    {
                        "chat_id": CHAT_ID,
                        "top_n": {"type": "integer", "minimum": 1, "maximum": max_n},
                    },
                    ["chat_id"],
                    "ChatMovies",
                ),
            },
            **_seed_paths(),
            "/similar": get("Items similar to an item (cosine)", [item, n], "SimilarItems", "404"),
            "/similar-users": get(
                "Users similar to a user (cosine)", [user, n], "SimilarUsers", "404"
            ),
            "/popular": get(
                "Most popular items in the window",
                [
                    n,
                    offset,
                    _param(
                        "recent",
                        {"type": "boolean", "default": False},
                        "Weight events by recency (half-life: a quarter of the window's span)",
                    ),
                ],
                "Popular",
            ),
            "/because": get(
                "The user's items that contributed most to an item's score",
                [user, item, n],
                "Because",
                "404",
            ),
            "/users/{user}/items": {
                "get": {
                    "summary": "What the model knows about a user (window and fresh events)",
                    "parameters": [{"name": "user", "in": "path", "required": True, "schema": ID}],
                    "responses": {"200": _json("UserItems", "Success"), **ERRORS},
                }
            },
            "/items": get(
                "Search the item catalogue by title",
                [
                    _param(
                        "q",
                        {"type": "string", "minLength": 1, "maxLength": 200},
                        "Text to find in titles (any case)",
                        required=True,
                    ),
                    n,
                    _param(
                        "match",
                        {
                            "type": "string",
                            "enum": ["substring", "forgiving"],
                            "default": "substring",
                        },
                        "forgiving: also ignore accents and punctuation and allow small typos",
                    ),
                ],
                "ItemSearch",
            ),
            "/interactions": {
                "post": {
                    "summary": "Publish events to Kafka (only with --enable-ingest; token if set)",
                    "security": [{"bearer": []}, {}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Event"},
                                        {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": 100,
                                            "items": {"$ref": "#/components/schemas/Event"},
                                        },
                                    ]
                                }
                            },
                            "text/plain": {"schema": EVENT_LINES},
                        },
                    },
                    "responses": {
                        "200": _json(
                            "IngestResult",
                            "Processed: accepted events are in Kafka; the rest are listed",
                        ),
                        "400": _json("Error", "The body is not JSON, lines, or holds no event"),
                        "401": _json("Error", "A bearer token is required"),
                        "403": _json("Error", "Ingest is disabled"),
                        "413": _json("Error", "Too many events in one request"),
                        "503": _json("Error", "Kafka did not confirm delivery"),
                    },
                }
            },
            "/status": get("Model, window, fresh events and error counts", [], "SystemStatus"),
            "/health": get("The process is alive", [], "Status"),
            "/ready": get("A model is loaded", [], "Status"),
            "/model": get("The serving snapshot's manifest", [], "ModelInfo"),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "parameter": {"type": "string"},
                    },
                },
                "ScoredItem": scored,
                "Exists": {
                    "type": "object",
                    "required": ["exists"],
                    "properties": {"exists": {"type": "integer", "enum": [0, 1]}},
                },
                "ChatItem": chat_item,
                "ChatMovies": {
                    "type": "object",
                    "required": ["movies"],
                    "properties": {
                        "movies": {"type": "array", "items": chat_item},
                        "ratings": {"type": "integer"},
                        "needed": {"type": "integer"},
                    },
                },
                "RateResult": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string"}, "recorded": {"type": "boolean"}},
                },
                "Event": {
                    "type": "object",
                    "required": ["user", "item"],
                    "properties": {
                        "user": EVENT_ID,
                        "item": EVENT_ID,
                        "weight": {
                            "type": "number",
                            "nullable": True,
                            "minimum": -MAX_WEIGHT,
                            "maximum": MAX_WEIGHT,
                            "description": "Default 1. Negative: a dislike; 0: seen, no "
                            f"preference. Otherwise a magnitude of at least {MIN_WEIGHT:g}. When "
                            "the builder declares a rating scale "
                            "(--ratings), a rating on that scale.",
                        },
                        "rating": {
                            "type": "number",
                            "nullable": True,
                            "description": "Another name for weight (a rating on the scale).",
                        },
                    },
                },
                "IngestResult": {
                    "type": "object",
                    "properties": {
                        "accepted": {"type": "integer"},
                        "rejected": {"type": "integer"},
                        "errors": {"type": "array"},
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
                "Recommendations": {
                    "type": "object",
                    "required": ["items", "source", "fallback", "model_version", "offset"],
                    "properties": {
                        "user": {"type": "string"},
                        "items_given": {"type": "array", "items": {"type": "string"}},
                        "fresh_events": {"type": "integer", "minimum": 0},
                        "items": items_array,
                        "source": {
                            "type": "string",
                            "enum": ["personalised", "fold-in", "popular"],
                        },
                        "fallback": {"type": "boolean"},
                        "offset": {"type": "integer"},
                        "model_version": {"type": "integer"},
                    },
                },
                "SimilarItems": {
                    "type": "object",
                    "required": ["item", "items", "model_version"],
                    "properties": {"item": {"type": "string"}, "items": items_array},
                },
                "SimilarUsers": {
                    "type": "object",
                    "required": ["user", "users", "model_version"],
                    "properties": {
                        "user": {"type": "string"},
                        "users": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["user", "score"],
                                "properties": {
                                    "user": {"type": "string"},
                                    "score": {"type": "number"},
                                },
                            },
                        },
                    },
                },
                "Popular": {
                    "type": "object",
                    "required": ["items", "model_version"],
                    "properties": {"items": items_array},
                },
                "Because": {
                    "type": "object",
                    "required": ["user", "item", "score", "because"],
                    "properties": {
                        "score": {"type": "number"},
                        "because": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["item", "contribution"],
                                "properties": {
                                    "item": {"type": "string"},
                                    "contribution": {"type": "number"},
                                },
                            },
                        },
                    },
                },
                "UserItems": {
                    "type": "object",
                    "required": ["user", "known_to_model", "window", "fresh"],
                    "properties": {
                        "known_to_model": {"type": "boolean"},
                        "window": {"type": "array"},
                        "fresh": {"type": "array"},
                    },
                },
                "ItemSearch": {
                    "type": "object",
                    "required": ["q", "items", "catalog_size"],
                    "properties": {"items": {"type": "array", "items": {"type": "object"}}},
                },
                "Status": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string"}},
                },
                "SystemStatus": {
                    "type": "object",
                    "required": ["now", "model", "fresh", "followed_events", "errors"],
                    "properties": {
                        "model": {"type": "object"},
                        "fresh": {"type": "object"},
                        "errors": {"type": "object"},
                    },
                },
                "ModelInfo": {
                    "type": "object",
                    "required": ["manifest", "users", "items"],
                    "properties": {"manifest": {"type": "object"}},
                },
            },
        },
    }
