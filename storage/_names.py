"""Context name validation: the one place every name is checked before it reaches a store.

Names end up in SQL parameters, Redis keys and file names, so only a small ASCII alphabet is
allowed: letters, digits, `.`, `_` and `-`, not starting with `.` (which rules out `.` and `..`).
"""

from __future__ import annotations

import re

from storage._exceptions import InvalidContextNameError

__all__ = ["MAX_NAME_LENGTH", "validate_context_name"]

MAX_NAME_LENGTH = 200
"""The longest context name accepted, in characters."""

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", re.ASCII)


def validate_context_name(name: object) -> str:
    """Return `name` if it is a valid context name.

    Raises:
        InvalidContextNameError: naming the value and the rule it breaks.
    """
    if not isinstance(name, str):
        raise InvalidContextNameError(name, f"must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidContextNameError(name, "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidContextNameError(
            name, f"is {len(name)} characters long, over {MAX_NAME_LENGTH}"
        )
    if _NAME.fullmatch(name) is None:
        raise InvalidContextNameError(
            name,
            "may hold only ASCII letters, digits, '.', '_' and '-', and must not start with '.'",
        )
    return name
