"""Query-parameter parsing that answers 400 with a JSON body naming the parameter."""

from __future__ import annotations

import json
from typing import NoReturn

from aiohttp import web

from ..events import DEFAULT_MAX_ID_BYTES

__all__ = ["bad_parameter", "bool_param", "id_list_param", "id_param", "int_param", "json_error"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
MAX_LIST_IDS = 1000


def json_error(status: int, error: str, message: str, **extra: object) -> web.Response:
    body = {"error": error, "message": message, **extra}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def bad_parameter(name: str, message: str) -> NoReturn:
    body = {"error": "bad_parameter", "parameter": name, "message": f"{name}: {message}"}
    raise web.HTTPBadRequest(text=json.dumps(body), content_type="application/json")


def _single(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        bad_parameter(name, "given more than once")
    return values[0] if values else None


def _check_id(name: str, value: str) -> str:
    if not value:
        bad_parameter(name, "must not be empty")
    if len(value.encode("utf-8")) > DEFAULT_MAX_ID_BYTES:
        bad_parameter(name, f"longer than {DEFAULT_MAX_ID_BYTES} bytes")
    return value


def id_param(request: web.Request, name: str) -> str:
    """A required id."""
    value = _single(request, name)
    if value is None:
        bad_parameter(name, "is required")
    return _check_id(name, value)


def id_list_param(request: web.Request, name: str) -> list[str]:
    """A comma-separated list of ids (absent: empty)."""
    value = _single(request, name)
    if value is None or value == "":
        return []
    ids = value.split(",")
    if len(ids) > MAX_LIST_IDS:
        bad_parameter(name, f"at most {MAX_LIST_IDS} ids")
    return [_check_id(name, i) for i in ids]


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
