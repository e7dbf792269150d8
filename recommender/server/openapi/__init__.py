"""The OpenAPI 3 description of the HTTP API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from ... import __version__
from ..page import PAGE_ASSETS
from .common import ERRORS, EVENT_LINES, FILTERS, ID, ID_LIST, json_ref, param
from .online import experiments_paths
from .schemas import SCHEMAS
from .seed import seed_paths, seed_recommend

__all__ = ["openapi_document"]


def openapi_document(max_n: int) -> dict[str, Any]:
    """The API description (``max_n`` is the server's largest allowed ``n``)."""
    n = param("n", {"type": "integer", "minimum": 1, "maximum": max_n, "default": 10}, "How many")
    offset = param(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": max_n, "default": 0},
        "Skip this many",
    )
    user = param("user", ID, "User id", required=True)
    item = param("item", ID, "Item id", required=True)

    def get(summary: str, params: list[dict[str, Any]], ok: str, *extra: str) -> dict[str, Any]:
        responses = {"200": json_ref(ok, "Success"), **ERRORS}
        for code in extra:
            responses[code] = json_ref("Error", "Unknown user or item")
        return {"get": {"summary": summary, "parameters": params, "responses": responses}}

    return {
        "openapi": "3.0.3",
        "info": {
            "title": "recommender",
            "version": __version__,
            "description": "Streaming recommendations: models of a sliding window (ALS, EASE, "
            "RP3beta, item-kNN, sequence), fresh events counted at once.",
        },
        "paths": {
            "/recommend": {
                "get": {
                    "summary": "Top-n items for a user (user=) or an anonymous session (items=)",
                    "parameters": [
                        param("user", ID, "User id (give user or items, not both)"),
                        param("items", ID_LIST, "Comma-separated items of an anonymous session"),
                        n,
                        offset,
                        param("exclude", ID_LIST, "Comma-separated items never to recommend"),
                        param(
                            "filter_seen",
                            {"type": "boolean", "default": True},
                            "Leave out items the user already has",
                        ),
                        *FILTERS,
                    ],
                    "responses": {"200": json_ref("Recommendations", "Success"), **ERRORS},
                },
                "post": seed_recommend(max_n),
            },
            **seed_paths(),
            **experiments_paths(),
            "/similar": get(
                "Items similar to an item (by the serving model)",
                [item, n, *FILTERS],
                "SimilarItems",
                "404",
            ),
            "/similar-users": get(
                "Users similar to a user (cosine of user vectors; 400 for a family without)",
                [user, n],
                "SimilarUsers",
                "404",
            ),
            "/popular": get(
                "Most popular items in the window",
                [
                    n,
                    offset,
                    param(
                        "recent",
                        {"type": "boolean", "default": False},
                        "Weight events by recency (half-life: a quarter of the window's span)",
                    ),
                    *FILTERS,
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
                    "responses": {"200": json_ref("UserItems", "Success"), **ERRORS},
                }
            },
            "/items": get(
                "Search the item catalogue by title",
                [
                    param(
                        "q",
                        {"type": "string", "minLength": 1, "maxLength": 200},
                        "Text to find in titles (any case)",
                        required=True,
                    ),
                    n,
                    param(
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
                        "200": json_ref(
                            "IngestResult",
                            "Processed: accepted events are in Kafka; the rest are listed",
                        ),
                        "400": json_ref("Error", "The body is not JSON, lines, or holds no event"),
                        "401": json_ref("Error", "A bearer token is required"),
                        "403": json_ref("Error", "Ingest is disabled"),
                        "413": json_ref("Error", "Too many events in one request"),
                        "503": json_ref("Error", "Kafka did not confirm delivery"),
                    },
                }
            },
            "/status": get("Model, window, fresh events and error counts", [], "SystemStatus"),
            "/health": get("The process is alive", [], "Status"),
            "/ready": get("A model is loaded", [], "Status"),
            "/model": get("The serving snapshot's manifest", [], "ModelInfo"),
            "/": {
                "get": {
                    "summary": "The original API given userId= (recommendationsNumber=), "
                    "else the live web page",
                    "parameters": [
                        param(
                            "userId", ID, "User id (without it and recommendationsNumber: the page)"
                        ),
                        param(
                            "recommendationsNumber",
                            {"type": "integer", "minimum": 1, "maximum": max_n, "default": 10},
                            "How many",
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "Recommended item ids, or the page",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/OriginalAnswer"}
                                },
                                "text/html": {"schema": {"type": "string"}},
                            },
                        },
                        **ERRORS,
                    },
                }
            },
            "/static/vendor/{name}": {
                "get": {
                    "summary": "The page's charting library (uPlot, vendored): "
                    "uPlot.iife.min.js, uPlot.min.css or its licence, uPlot.LICENSE",
                    "parameters": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": sorted(PAGE_ASSETS)},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The file, cached for a day",
                            "content": {
                                "application/javascript": {"schema": {"type": "string"}},
                                "text/css": {"schema": {"type": "string"}},
                                "text/plain": {"schema": {"type": "string"}},
                            },
                        },
                        "404": json_ref("Error", "No such file"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text exposition format 0.0.4)",
                    "responses": {
                        "200": {
                            "description": "Success",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": ERRORS["401"],
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "Success",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "401": ERRORS["401"],
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
    }
