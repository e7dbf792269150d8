"""Schemas and helpers shared by the OpenAPI description's parts."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CATEGORIES",
    "CATEGORY",
    "ERRORS",
    "EVENT_ID",
    "EVENT_LINES",
    "FILTERS",
    "ID",
    "ID_LIST",
    "json_ref",
    "param",
]

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

#: A category name (server/validation.py: 1 to 64 characters, at most 32 of them).
CATEGORY = {"type": "string", "minLength": 1, "maxLength": 64}
CATEGORIES = {"type": "array", "items": CATEGORY, "maxItems": 32}


def param(
    name: str, schema: dict[str, Any], description: str, *, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def json_ref(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


ERRORS = {
    "400": json_ref("Error", "A parameter is invalid; the body names it"),
    "401": json_ref("Error", "A bearer token is required (see --api-token)"),
    "503": json_ref("Error", "No model is loaded yet"),
}

#: The catalogue filters every answering route takes (``label.NAME=VALUE`` too: every given
#: label must hold; OpenAPI cannot name a parameter family, so it is described here).
FILTERS = [
    {
        **param(
            "category",
            CATEGORIES,
            "Only items in one of these categories (repeat the parameter); with "
            "label.NAME=VALUE parameters, only items whose label NAME is VALUE",
        ),
        "style": "form",
        "explode": True,
    },
    {
        **param("exclude_category", CATEGORIES, "Never items in these categories (repeatable)"),
        "style": "form",
        "explode": True,
    },
]
