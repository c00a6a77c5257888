"""`open_store(url)`: one string picks and configures a store."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from storage._memory import MemoryStore
from storage._sqlite import SqliteStore
from storage._store import Store

__all__ = ["REDIS_QUERY_OPTIONS", "open_store"]

REDIS_QUERY_OPTIONS = frozenset(
    {"prefix", "socket_timeout", "socket_connect_timeout", "change_silence"}
)
"""The query parameters a `redis://` URL may carry; any other is a `ValueError`."""


def open_store(url: str, **options: Any) -> Store:
    """Open the store a URL names; `options` go to the store's constructor.

    - `memory://`: a new `MemoryStore`.
    - `sqlite:///relative/path.db` and `sqlite:////absolute/path.db`: a `SqliteStore`
      (three slashes then a relative path, four for an absolute one, as in SQLAlchemy).
    - `redis://[[user]:password@]host[:port][/db][?prefix=app&socket_timeout=2]`: a
      `RedisStore` (port 6379 and database 0 unless given; the query may also set
      `socket_connect_timeout` and `change_silence`). Needs redis-py.

    Raises:
        ValueError: the URL's scheme is unknown, the URL has no path or host where one is
            needed, or it carries a query parameter the store does not take.
        ImportError: a `redis://` URL, and redis-py is not installed.
    """
    if not isinstance(url, str):  # callers may be untyped
        msg = f"store URL must be a str, not {type(url).__name__}"  # type: ignore[unreachable]
        raise TypeError(msg)
    parts = urlsplit(url)
    if parts.fragment or url.endswith("#"):
        msg = f"store URL takes no fragment: {url!r}"
        raise ValueError(msg)
    if parts.scheme == "redis":
        return _open_redis(url, options)
    if parts.query or "?" in url:
        # "?" would otherwise be dropped silently, along with any settings after it.
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
    msg = (
        f"unknown store URL scheme {parts.scheme!r} in {url!r}; "
        "expected memory://, sqlite:// or redis://"
    )
    raise ValueError(msg)


def _open_redis(url: str, options: dict[str, Any]) -> Store:
    parts = urlsplit(url)
    if not url.startswith("redis://") or not parts.hostname:
        msg = f"redis URL must be redis://host[:port][/db], got {url!r}"
        raise ValueError(msg)
    try:
        port = parts.port if parts.port is not None else 6379
    except ValueError as exc:  # not a number, or out of range
        msg = f"redis URL has a bad port: {url!r}"
        raise ValueError(msg) from exc
    db_text = parts.path[1:] if parts.path.startswith("/") else parts.path
    if db_text and not (db_text.isascii() and db_text.isdigit()):
        msg = f"redis URL path must be a database number, got {parts.path!r} in {url!r}"
        raise ValueError(msg)
    settings: dict[str, Any] = {"db": int(db_text)} if db_text else {}
    if "?" in url and not parts.query:
        msg = f"redis URL has an empty query: {url!r}"
        raise ValueError(msg)
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        msg = f"redis URL has a malformed query: {url!r}"
        raise ValueError(msg) from exc
    for key, value in query:
        if key not in REDIS_QUERY_OPTIONS:
            msg = (
                f"redis URL query parameter {key!r} is unknown; expected one of "
                f"{', '.join(sorted(REDIS_QUERY_OPTIONS))}: {url!r}"
            )
            raise ValueError(msg)
        if key in settings:
            msg = f"redis URL repeats query parameter {key!r}: {url!r}"
            raise ValueError(msg)
        settings[key] = value if key == "prefix" else _seconds(key, value, url)
    clashes = sorted(settings.keys() & options.keys())
    if clashes:
        msg = f"redis URL and arguments both set {', '.join(clashes)}: {url!r}"
        raise ValueError(msg)
    if parts.username:
        settings["username"] = unquote(parts.username)
    if parts.password is not None:
        settings["password"] = unquote(parts.password)

    from storage._redis import RedisStore  # noqa: PLC0415 - redis-py is an optional extra

    return RedisStore(parts.hostname, port, **settings, **options)


def _seconds(key: str, value: str, url: str) -> float:
    try:
        return float(value)
    except ValueError:
        msg = f"redis URL query parameter {key} must be a number of seconds: {url!r}"
        raise ValueError(msg) from None
