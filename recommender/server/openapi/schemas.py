"""The schemas of the API's answers and bodies (``components.schemas``)."""

from __future__ import annotations

from typing import Any

from ...events import MAX_WEIGHT, MIN_WEIGHT
from .common import EVENT_ID
from .online import ONLINE_SCHEMAS, RECOMMENDATION_ID
from .seed import SEED_SCHEMAS

__all__ = ["SCHEMAS"]

_SCORED = {
    "type": "object",
    "required": ["item", "score"],
    "properties": {
        "item": {"type": "string"},
        "score": {
            "type": "number",
            "description": "The route's score: /recommend the family's score for this history "
            "(its own scale; event counts when source is popular), /similar the similarity, "
            "/popular the window's events. Compare within one answer (and one arm) only",
        },
        "arm": {
            "type": "string",
            "enum": ["champion", "challenger"],
            "description": "In an interleaved answer: the arm that placed this item",
        },
        "metadata": {"type": "object"},
    },
}
_ITEMS = {"type": "array", "items": {"$ref": "#/components/schemas/ScoredItem"}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "parameter": {"type": "string"},
        },
    },
    "ScoredItem": _SCORED,
    "OriginalAnswer": {
        "type": "object",
        "required": ["user_id", "recommended_items", "recommendation_id"],
        "properties": {
            "user_id": {"type": "string"},
            "recommended_items": {"type": "array", "items": {"type": "string"}},
            "recommendation_id": RECOMMENDATION_ID,
        },
    },
    **SEED_SCHEMAS,
    **ONLINE_SCHEMAS,
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
            "recommendation_id": {
                **RECOMMENDATION_ID,
                "description": "The answer this event responds to (optional: "
                "without it, the newest answer to the user showing the item within "
                "the attribution window is credited)",
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
        "required": [
            "items",
            "source",
            "fallback",
            "model_version",
            "offset",
            "recommendation_id",
        ],
        "properties": {
            "recommendation_id": RECOMMENDATION_ID,
            "arm": {
                "type": "string",
                "enum": ["champion", "challenger", "interleaved"],
                "description": "In an experiment: who answered",
            },
            "user": {"type": "string"},
            "items_given": {"type": "array", "items": {"type": "string"}},
            "fresh_events": {"type": "integer", "minimum": 0},
            "items": _ITEMS,
            "source": {
                "type": "string",
                "enum": ["personalised", "fold-in", "popular", "mixed"],
            },
            "fallback": {"type": "boolean"},
            "offset": {"type": "integer"},
            "model_version": {"type": "integer"},
        },
    },
    "SimilarItems": {
        "type": "object",
        "required": ["item", "items", "model_version", "recommendation_id"],
        "properties": {
            "item": {"type": "string"},
            "items": _ITEMS,
            "recommendation_id": RECOMMENDATION_ID,
        },
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
        "required": ["items", "model_version", "recommendation_id"],
        "properties": {"items": _ITEMS, "recommendation_id": RECOMMENDATION_ID},
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
        "required": ["manifest", "users", "items", "family"],
        "properties": {
            "manifest": {"type": "object"},
            "family": {
                "type": "string",
                "description": "The model family serving (als, ease, ...)",
            },
            "factors": {
                "type": "integer",
                "description": "Latent dimensions (0 for item-item families)",
            },
            "has_user_vectors": {
                "type": "boolean",
                "description": "Whether /similar-users can answer",
            },
        },
    },
}
