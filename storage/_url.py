"""`open_store(url)`: one string picks and configures a store."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from storage._memory import MemoryStore
from storage._sqlite import SqliteStore
from storage._store import Store

__all__ = ["open_store"]


def open_store(url: str, **options: Any) -> Store:
    """Open the store a URL names; `options` go to the store's constructor.

    - `memory://`: a new `MemoryStore`.
    - `sqlite:///relative/path.db` and `sqlite:////absolute/path.db`: a `SqliteStore`
      (three slashes then a relative path, four for an absolute one, as in SQLAlchemy).

    Raises:
        ValueError: the URL's scheme is unknown or the URL has no path where one is needed.
    """
    if not isinstance(url, str):  # callers may be untyped
        msg = f"store URL must be a str, not {type(url).__name__}"  # type: ignore[unreachable]
        raise TypeError(msg)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        # "?" and "#" would otherwise be dropped silently, along with any settings after them.
        msg = f"store URL takes no query or fragment; pass options as arguments: {url!r}"
        raise ValueError(msg)
    if parts.scheme == "memory":
        if parts.netloc or parts.path:
            msg = f"memory store URL takes no path: {url!r}"
            raise ValueError(msg)
        return MemoryStore(**options)
    if parts.scheme == "sqlite":
        # urlsplit reads "sqlite:x.db" and "sqlite:/x.db" much like "sqlite:///x.db"; insist on
        # the three slashes so that a typo cannot open some other file.
        if parts.netloc or not url[len("sqlite:") :].startswith("///"):
            msg = f"sqlite URL must be sqlite:///relative or sqlite:////absolute, got {url!r}"
            raise ValueError(msg)
        path = parts.path[1:]  # drop the slash that ends the empty authority
        if not path:
            msg = f"sqlite URL has no file path: {url!r}"
            raise ValueError(msg)
        return SqliteStore(path, **options)
    msg = f"unknown store URL scheme {parts.scheme!r} in {url!r}; expected memory:// or sqlite://"
    raise ValueError(msg)
