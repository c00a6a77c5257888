"""Structured fields on the log records the runtime emits about a context.

Every record about one context carries `extra=context_fields(name, version)`: the record
gets the attributes `context` (the name) and `context_version` (the version the tracker
holds, None if it holds none or it is not known where the record is made), so that a JSON
formatter (python-json-logger, structlog's stdlib bridge) or a `%(context)s` format string
picks them up without parsing the message. The message text says the same for plain logs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["context_fields"]


def context_fields(name: str, version: int | None = None) -> dict[str, Any]:
    """The `extra=` of a log record about context `name` (at `version`, if known)."""
    return {"context": name, "context_version": version}
