"""Query-parameter parsing that answers 400 with a JSON body naming the parameter."""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

from aiohttp import web

from ..items import ItemFilter

__all__ = [
    "bad_parameter",
    "bool_param",
    "check_id",
    "id_list_param",
    "id_param",
    "id_problem",
    "int_param",
    "json_error",
    "json_response",
    "safe_dumps",
    "text_param",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
MAX_LIST_IDS = 1000  # a 2,000-character list holds at most 1,000 ids
MAX_LIST_CHARS = 2000
MAX_ID_CHARS = 256
_FORBIDDEN = re.compile(r"[:,\x00-\x1f\x7f]")


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def safe_dumps(value: Any) -> str:
    """JSON text that is always valid JSON: a NaN or infinity (which a verified snapshot should
    never produce) becomes null instead of the non-standard ``NaN`` token."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False)


def json_response(data: Any, *, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=safe_dumps)


def json_error(status: int, error: str, message: str, **extra: object) -> web.Response:
    body = {"error": error, "message": message, **extra}
    return web.Response(status=status, text=safe_dumps(body), content_type="application/json")


def bad_parameter(name: str, message: str) -> NoReturn:
    body = {"error": "bad_parameter", "parameter": name, "message": f"{name}: {message}"}
    raise web.HTTPBadRequest(text=json.dumps(body), content_type="application/json")


def _single(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        bad_parameter(name, "given more than once")
    return values[0] if values else None


def id_problem(value: str) -> str | None:
    """What makes ``value`` unusable as an id (the event rules), or None."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_CHARS:
        return f"longer than {MAX_ID_CHARS} characters"
    if _FORBIDDEN.search(value):
        return "ids never contain ':', ',' or control characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: JSON and percent-decoding let it through
            return "is not valid Unicode text (a lone surrogate)"
    return None


def check_id(name: str, value: str) -> str:
    """Ids follow the event rules: 1 to 256 characters, no ':' and no control characters."""
    problem = id_problem(value)
    if problem:
        bad_parameter(name, problem)
    return value


def id_param(request: web.Request, name: str) -> str:
    """A required id."""
    value = _single(request, name)
    if value is None:
        bad_parameter(name, "is required")
    return check_id(name, value)


def id_list_param(request: web.Request, name: str) -> list[str]:
    """A comma-separated list of ids (absent: empty)."""
    value = _single(request, name)
    if value is None:
        return []
    if value == "":
        bad_parameter(name, "must not be empty (leave the parameter out instead)")
    if len(value) > MAX_LIST_CHARS:
        bad_parameter(name, f"at most {MAX_LIST_CHARS} characters")
    ids = value.split(",")
    if len(ids) > MAX_LIST_IDS:
        bad_parameter(name, f"at most {MAX_LIST_IDS} ids")
    return [check_id(name, i) for i in ids]


def int_param(request: web.Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    value = _single(request, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        bad_parameter(name, f"must be an integer from {minimum} to {maximum}, got {value!r}")
    if not minimum <= number <= maximum:
        bad_parameter(name, f"must be an integer from {minimum} to {maximum}, got {number}")
    return number


def bool_param(request: web.Request, name: str, *, default: bool) -> bool:
    value = _single(request, name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    bad_parameter(name, f"must be true or false, got {value!r}")


def text_param(request: web.Request, name: str, *, max_length: int) -> str:
    """A required, non-empty free-text parameter."""
    value = _single(request, name)
    if value is None:
        bad_parameter(name, "is required")
    if not value:
        bad_parameter(name, "must not be empty")
    if len(value) > max_length:
        bad_parameter(name, f"at most {max_length} characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            bad_parameter(name, "is not valid Unicode text (a lone surrogate)")
    return value


_LABEL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_FILTER_VALUES = 32


def filter_params(request: web.Request) -> ItemFilter | None:
    """``category=`` (repeatable: any of them), ``exclude_category=`` (repeatable) and
    ``label.NAME=VALUE`` (every one must hold); None when none is given."""
    query = request.query
    categories = query.getall("category", [])
    excluded = query.getall("exclude_category", [])
    labels = []
    for key in query:
        if not key.startswith("label."):
            continue
        name = key[len("label.") :]
        values = query.getall(key)
        if not _LABEL_NAME.match(name):
            bad_parameter(key, "label names are letters, digits, _ . - (at most 64)")
        if len(values) > 1:
            bad_parameter(key, "given more than once")
        if not 0 < len(values[0]) <= 256:
            bad_parameter(key, "must be 1 to 256 characters")
        labels.append((name, values[0]))
    for name, given in (("category", categories), ("exclude_category", excluded)):
        if len(given) > MAX_FILTER_VALUES:
            bad_parameter(name, f"at most {MAX_FILTER_VALUES} values")
        for value in given:
            if not 0 < len(value) <= 64:
                bad_parameter(name, "must be 1 to 64 characters")
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    bad_parameter(name, "is not valid Unicode text (a lone surrogate)")
    if not (categories or excluded or labels):
        return None
    return ItemFilter(frozenset(categories), frozenset(excluded), tuple(sorted(labels)))
