"""Checks of store options shared by the stores that take them."""

from __future__ import annotations

import math

from storage._exceptions import ConfigurationError

__all__ = ["positive_seconds"]


def positive_seconds(name: str, value: float) -> float:
    """`value` as float seconds if it is a finite positive number, else `ConfigurationError`
    naming option `name` and the value (a bool is refused: `True` is no duration)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        msg = f"{name} must be a positive number of seconds, not {value!r}"
        raise ConfigurationError(msg)
    if not math.isfinite(value):
        msg = f"{name} must be finite, not {value!r}"
        raise ConfigurationError(msg)
    return float(value)
