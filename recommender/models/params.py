"""Checks of a family's settings, shared by every family's ``validate`` (clear ValueErrors)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["choice", "complete", "flag", "integer", "number"]


def complete(family: str, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``params``; a name the family does not know is an error (a typo
    would otherwise be ignored silently)."""
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"{family}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(defaults)})"
        )
    return {**defaults, **params}


def number(params: dict[str, Any], name: str, low: float, high: float) -> float:
    """``params[name]`` as a float in ``[low, high]`` (stored back as float)."""
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, not {value:g}")
    params[name] = float(value)
    return float(value)


def integer(params: dict[str, Any], name: str, low: int, high: int) -> int:
    """``params[name]`` as an int in ``[low, high]`` (a float with an integral value is accepted:
    JSON and optuna may hand one over)."""
    value = params[name]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")
    params[name] = value
    return value


def choice(params: dict[str, Any], name: str, options: Sequence[str]) -> str:
    value = params[name]
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}, not {value!r}")
    return str(value)


def flag(params: dict[str, Any], name: str) -> bool:
    value = params[name]
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value
