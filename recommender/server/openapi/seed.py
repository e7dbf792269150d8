"""The seed-001 chat API's part of the OpenAPI description (see ``server/seed_api.py``)."""

from __future__ import annotations

from typing import Any

from .common import CATEGORIES, CATEGORY, ID, json_ref
from .online import RECOMMENDATION_ID

__all__ = ["SEED_SCHEMAS", "seed_paths", "seed_recommend"]

CHAT_ID = {
    "oneOf": [{"type": "integer"}, ID],
    "description": "The chat's id: a JSON number or string",
}
_SEED_ERRORS = {
    "400": json_ref("Error", "The body is not a JSON object of the documented fields"),
    "401": json_ref("Error", "A bearer token is required (see --api-token)"),
    "503": json_ref("Error", "No model is loaded yet, or Kafka did not confirm delivery"),
}


def _seed_post(
    summary: str, fields: dict[str, Any], required: list[str], ok: str, *extra: str
) -> dict[str, Any]:
    responses = {"200": json_ref(ok, "Success"), **_SEED_ERRORS}
    for code in extra:
        responses[code] = json_ref("Error", "See the message")
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


def seed_paths() -> dict[str, Any]:
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


def seed_recommend(max_n: int) -> dict[str, Any]:
    """``POST /recommend`` (``GET /recommend`` is the service's own)."""
    return _seed_post(
        "Seed-001 API: top_n for a chat user ({movies: []} below --min-ratings)",
        {
            "chat_id": CHAT_ID,
            "top_n": {"type": "integer", "minimum": 1, "maximum": max_n},
            "category": {"oneOf": [CATEGORY, CATEGORIES]},
            "exclude_category": {"oneOf": [CATEGORY, CATEGORIES]},
        },
        ["chat_id"],
        "ChatMovies",
    )


CHAT_ITEM = {
    "type": "object",
    "required": ["id", "title", "url"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "url": {"type": "string", "nullable": True},
    },
}

SEED_SCHEMAS: dict[str, Any] = {
    "Exists": {
        "type": "object",
        "required": ["exists"],
        "properties": {"exists": {"type": "integer", "enum": [0, 1]}},
    },
    "ChatItem": CHAT_ITEM,
    "ChatMovies": {
        "type": "object",
        "required": ["movies", "recommendation_id"],
        "properties": {
            "recommendation_id": RECOMMENDATION_ID,
            "movies": {"type": "array", "items": CHAT_ITEM},
            "ratings": {"type": "integer"},
            "needed": {"type": "integer"},
        },
    },
    "RateResult": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}, "recorded": {"type": "boolean"}},
    },
}
