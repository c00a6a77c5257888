"""`open_store(url)`: one string picks and configures a store.

A URL names the store and may carry its options as query parameters, in the style of
SQLAlchemy and redis-py: `sqlite:///app.db?synchronous=normal&busy_timeout=5`,
`redis://host/0?socket_timeout=2`. What each scheme takes is one table below (option name to
the parser of its text); the parsers check the text's form, the store's constructor the
value's range. Every mistake is a `ConfigurationError` naming the option and the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import SplitResult, quote, unquote, unquote_plus, urlencode, urlsplit, urlunsplit

from storage._exceptions import ConfigurationError
from storage._memory import MemoryStore
from storage._sqlite import SYNCHRONOUS_LEVELS, SqliteStore
from storage._store import Store

__all__ = [
    "MEMORY_OPTIONS",
    "POSTGRES_OPTIONS",
    "REDIS_CLUSTER_OPTIONS",
    "REDIS_OPTIONS",
    "SQLITE_OPTIONS",
    "URL_OPTIONS",
    "open_store",
]

Parser = Callable[[str], object]
"""Turns an option's text into the value the store's constructor takes, or raises
ValueError with what the text should look like."""

_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", re.ASCII)
_WHOLE = re.compile(r"[0-9]+", re.ASCII)
_PASSWORD = re.compile(r"(?<=://)([^/?#:@]*):[^/?#]*@")


def _seconds(text: str) -> float:
    # Plain decimals only: float() would also take "inf", "nan", "1e3", " 2 " and "1_0".
    if _DECIMAL.fullmatch(text) is None:
        msg = "a number of seconds such as 2 or 0.5"
        raise ValueError(msg)
    return float(text)


def _whole(text: str) -> int:
    if _WHOLE.fullmatch(text) is None:
        msg = "a whole number such as 3"
        raise ValueError(msg)
    return int(text)


def _synchronous(text: str) -> str:
    level = text.upper()  # SQLite's own pragma is case-insensitive
    if level not in SYNCHRONOUS_LEVELS:
        msg = "one of off, normal, full or extra"
        raise ValueError(msg)
    return level


def _text(text: str) -> str:
    return text


def _lowercase(text: str) -> str:
    return text.lower()  # PostgreSQL's own setting names and values are case-insensitive


MEMORY_OPTIONS: Mapping[str, Parser] = {"retain_heads": _whole}
"""Query parameters of `memory://`."""

SQLITE_OPTIONS: Mapping[str, Parser] = {
    "synchronous": _synchronous,
    "busy_timeout": _seconds,
    "retain_heads": _whole,
}
"""Query parameters of `sqlite:///path`: `SqliteStore`'s options but the codec."""

REDIS_OPTIONS: Mapping[str, Parser] = {
    "prefix": _text,
    "socket_timeout": _seconds,
    "socket_connect_timeout": _seconds,
    "change_silence": _seconds,
    "retain_heads": _whole,
}
"""Query parameters of `redis://host[:port][/db]`: `RedisStore`'s options but the codec
and those the URL spells elsewhere (host, port, database, user name, password)."""

REDIS_CLUSTER_OPTIONS: Mapping[str, Parser] = {
    "prefix": _text,
    "socket_timeout": _seconds,
    "socket_connect_timeout": _seconds,
    "retain_heads": _whole,
}
"""Query parameters of `redis+cluster://host:port[,host:port...]`: `RedisClusterStore`'s
options but the codec and those the URL spells elsewhere (nodes, user name, password). No
`change_silence`: a cluster store keeps no change subscription."""

POSTGRES_STORE_OPTIONS: Mapping[str, Parser] = {
    "schema": _text,
    "timeout": _seconds,
    "pool_size": _whole,
    "synchronous_commit": _lowercase,
    "retain_heads": _whole,
}
"""The query parameters of `postgresql://` that are `PostgresStore`'s own options."""

LIBPQ_OPTIONS: Mapping[str, Parser] = {
    "application_name": _text,
    "channel_binding": _text,
    "connect_timeout": _whole,
    "gssencmode": _text,
    "host": _text,
    "keepalives": _whole,
    "keepalives_count": _whole,
    "keepalives_idle": _whole,
    "keepalives_interval": _whole,
    "options": _text,
    "passfile": _text,
    "port": _text,
    "sslcert": _text,
    "sslcrl": _text,
    "sslkey": _text,
    "sslmode": _text,
    "sslrootcert": _text,
    "target_session_attrs": _text,
    "tcp_user_timeout": _whole,
}
"""The query parameters of `postgresql://` handed to libpq as they are (libpq checks their
values when it connects). A password belongs in the URL's user part or a passfile."""

POSTGRES_OPTIONS: Mapping[str, Parser] = {**POSTGRES_STORE_OPTIONS, **LIBPQ_OPTIONS}
"""Query parameters of `postgresql://[user[:password]@][host][:port][/dbname]`:
`PostgresStore`'s options but the codec, and the libpq parameters above."""

URL_OPTIONS: Mapping[str, Mapping[str, Parser]] = {
    "memory": MEMORY_OPTIONS,
    "sqlite": SQLITE_OPTIONS,
    "redis": REDIS_OPTIONS,
    "redis+cluster": REDIS_CLUSTER_OPTIONS,
    "postgresql": POSTGRES_OPTIONS,
    "postgres": POSTGRES_OPTIONS,
}
"""The query parameters of each scheme; any other is a `ConfigurationError`."""


def open_store(url: str, **options: Any) -> Store:
    """Open the store a URL names, configured by the URL's query and by `options`.

    - `memory://[?retain_heads=3]`: a new `MemoryStore`.
    - `sqlite:///relative/path.db` and `sqlite:////absolute/path.db`: a `SqliteStore`
      (three slashes then a relative path, four for an absolute one, as in SQLAlchemy); the
      query may set `synchronous` (off, normal, full, extra), `busy_timeout` (seconds) and
      `retain_heads`.
    - `redis://[[user]:password@]host[:port][/db]`: a `RedisStore` (port 6379 and database
      0 unless given); the query may set `prefix`, `socket_timeout`,
      `socket_connect_timeout`, `change_silence` (seconds) and `retain_heads`. Needs redis-py.
    - `redis+cluster://[[user]:password@]host:port[,host:port...][/0]`: a
      `RedisClusterStore` on the Redis Cluster those nodes belong to (one is enough; port
      6379 unless given; database 0 only); the query may set `prefix`, `socket_timeout`,
      `socket_connect_timeout` (seconds) and `retain_heads`. Needs redis-py.
    - `postgresql://[user[:password]@][host][:port][/dbname]` (or `postgres://`): a
      `PostgresStore`; the query may set `schema`, `timeout` (seconds), `pool_size`,
      `synchronous_commit` and `retain_heads`, and the libpq parameters of `LIBPQ_OPTIONS`
      (`sslmode`, `application_name`, `connect_timeout`, ...), which go to libpq as they
      are. Needs psycopg 3 and psycopg_pool.

    `options` are the store constructor's keyword arguments: the query parameters (typed
    values, not text), `codec`, for Redis `db`, `username` and `password`, and for Redis
    Cluster `username` and `password`. An option
    may be set in the URL or as an argument, not both.

    Raises:
        ConfigurationError: the URL is not a str, its scheme is unknown, it has no path or
            host where one is needed, or an option is unknown, repeated, malformed, out of
            range or set twice. (A subclass of `TypeError` and `ValueError`.)
        ImportError: a `redis://` URL without redis-py installed, or a `postgresql://` URL
            without psycopg.
    """
    if not isinstance(url, str):  # callers may be untyped
        msg = f"store URL must be a str, not {type(url).__name__}"  # type: ignore[unreachable]
        raise ConfigurationError(msg)
    shown = _PASSWORD.sub(r"\1:***@", url, count=1)  # messages never show a password
    if "#" in url:
        msg = f"store URL takes no fragment ('#'; write %23 in a password): {shown!r}"
        raise ConfigurationError(msg)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # a bracketed host that is not an IPv6 address, say
        msg = f"store URL is malformed ({exc}): {shown!r}"
        raise ConfigurationError(msg) from None
    scheme = _SCHEMES.get(parts.scheme)
    if scheme is None:
        msg = (
            f"unknown store URL scheme {parts.scheme!r} in {shown!r}; "
            "expected memory://, sqlite://, redis://, redis+cluster:// or postgresql://"
        )
        raise ConfigurationError(msg)
    unknown = sorted(options.keys() - scheme.options.keys() - scheme.keywords)
    if unknown:
        msg = (
            f"unknown {parts.scheme} store option {unknown[0]!r}; expected one of "
            f"{', '.join(sorted(scheme.options.keys() | scheme.keywords))}"
        )
        raise ConfigurationError(msg)
    settings = _query(parts, scheme.options, shown)
    if "?" in url and not parts.query:
        # urlsplit drops an empty query silently; so would a typo's settings after it.
        msg = f"store URL has an empty query after '?': {shown!r}"
        raise ConfigurationError(msg)
    return scheme.open(url, parts, shown, settings, options)


def _query(parts: SplitResult, table: Mapping[str, Parser], shown: str) -> dict[str, Any]:
    """The query's options, each parsed by its entry in `table`."""
    settings: dict[str, Any] = {}
    if not parts.query:
        return settings
    for field in parts.query.split("&"):
        raw_name, equals, raw_text = field.partition("=")
        try:
            name = unquote_plus(raw_name, errors="strict")
            text = unquote_plus(raw_text, errors="strict")
        except UnicodeDecodeError:
            msg = f"{parts.scheme} URL option {raw_name!r} is not UTF-8 once decoded: {shown!r}"
            raise ConfigurationError(msg) from None
        if name not in table:
            msg = (
                f"{parts.scheme} URL option {name!r} is unknown; expected one of "
                f"{', '.join(sorted(table))}: {shown!r}"
            )
            raise ConfigurationError(msg)
        if name in settings:
            msg = f"{parts.scheme} URL repeats option {name!r}: {shown!r}"
            raise ConfigurationError(msg)
        if not equals:
            msg = f"{parts.scheme} URL option {name!r} has no value (write {name}=...): {shown!r}"
            raise ConfigurationError(msg)
        try:
            settings[name] = table[name](text)
        except ValueError as exc:
            msg = f"{parts.scheme} URL option {name} must be {exc}, got {text!r}: {shown!r}"
            raise ConfigurationError(msg) from None
    return settings


def _merge(settings: dict[str, Any], options: dict[str, Any], shown: str) -> dict[str, Any]:
    clashes = sorted(settings.keys() & options.keys())
    if clashes:
        msg = f"store URL and arguments both set {', '.join(clashes)}: {shown!r}"
        raise ConfigurationError(msg)
    return {**settings, **options}


def _open_memory(
    _url: str, parts: SplitResult, shown: str, settings: dict[str, Any], options: dict[str, Any]
) -> Store:
    if parts.netloc or parts.path:
        msg = f"memory store URL takes no host or path: {shown!r}"
        raise ConfigurationError(msg)
    return MemoryStore(**_merge(settings, options, shown))


def _open_sqlite(
    url: str, parts: SplitResult, shown: str, settings: dict[str, Any], options: dict[str, Any]
) -> Store:
    # urlsplit reads "sqlite:x.db" and "sqlite:/x.db" much like "sqlite:///x.db"; insist on
    # the three slashes so that a typo cannot open some other file.
    if parts.netloc or not url[len("sqlite:") :].startswith("///"):
        msg = f"sqlite URL must be sqlite:///relative or sqlite:////absolute, got {shown!r}"
        raise ConfigurationError(msg)
    path = parts.path[1:]  # drop the slash that ends the empty authority
    if not path:
        msg = f"sqlite URL has no file path: {shown!r}"
        raise ConfigurationError(msg)
    return SqliteStore(path, **_merge(settings, options, shown))


def _open_redis(
    url: str, parts: SplitResult, shown: str, settings: dict[str, Any], options: dict[str, Any]
) -> Store:
    if not url.startswith("redis://") or not parts.hostname:
        msg = f"redis URL must be redis://host[:port][/db], got {shown!r}"
        raise ConfigurationError(msg)
    try:
        port = parts.port if parts.port is not None else 6379
    except ValueError:  # not a number, or out of range
        msg = f"redis URL has a bad port: {shown!r}"
        raise ConfigurationError(msg) from None
    db_text = parts.path[1:] if parts.path.startswith("/") else parts.path
    if db_text and not (db_text.isascii() and db_text.isdigit()):
        msg = f"redis URL path must be a database number, got {parts.path!r} in {shown!r}"
        raise ConfigurationError(msg)
    spelled: dict[str, Any] = {"db": int(db_text)} if db_text else {}
    if parts.username:
        spelled["username"] = unquote(parts.username)
    if parts.password is not None:
        spelled["password"] = unquote(parts.password)

    from storage._redis import RedisStore  # noqa: PLC0415 - redis-py is an optional extra

    return RedisStore(parts.hostname, port, **_merge({**spelled, **settings}, options, shown))


def _open_redis_cluster(
    url: str, parts: SplitResult, shown: str, settings: dict[str, Any], options: dict[str, Any]
) -> Store:
    form = "redis+cluster://host:port[,host:port...]"
    # urlsplit cannot read several hosts (parts.port would fail): split the netloc here.
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not url.startswith("redis+cluster://") or not hosts:
        msg = f"redis+cluster URL must be {form}, got {shown!r}"
        raise ConfigurationError(msg)
    nodes = [_cluster_node(text, shown) for text in hosts.split(",")]
    db_text = parts.path[1:] if parts.path.startswith("/") else parts.path
    if db_text not in ("", "0"):
        msg = (
            f"a Redis Cluster has database 0 only; redis+cluster URL names database "
            f"{db_text!r}: {shown!r}"
        )
        raise ConfigurationError(msg)
    spelled: dict[str, Any] = {}
    if at:
        username, colon, password = userinfo.partition(":")
        if username:
            spelled["username"] = unquote(username)
        if colon:
            spelled["password"] = unquote(password)

    from storage._redis import RedisClusterStore  # noqa: PLC0415 - redis-py is optional

    return RedisClusterStore(nodes, **_merge({**spelled, **settings}, options, shown))


def _cluster_node(text: str, shown: str) -> tuple[str, int]:
    """`host[:port]` or `[v6 address][:port]` of a redis+cluster URL."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        bad = not bracket or not host or (rest and port_text is None)
    else:
        host, colon, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if colon else None
        bad = not host
    port = 6379
    if not bad and port_text is not None:
        bad = not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536
        port = int(port_text) if not bad else 0
    if bad:
        msg = f"redis+cluster URL has a bad node {text!r} (expected host:port): {shown!r}"
        raise ConfigurationError(msg)
    return unquote(host), port


def _open_postgres(
    url: str, parts: SplitResult, shown: str, settings: dict[str, Any], options: dict[str, Any]
) -> Store:
    if not url.startswith(f"{parts.scheme}://"):
        msg = f"postgresql URL must be postgresql://[user@]host[:port][/dbname], got {shown!r}"
        raise ConfigurationError(msg)
    # The store's options become arguments; libpq's go back into the URL, re-encoded, with
    # the user, password, hosts and database as they were written (libpq decodes them).
    merged = _merge(settings, options, shown)
    libpq = {name: merged.pop(name) for name in list(merged) if name in LIBPQ_OPTIONS}
    # libpq decodes %XX but not "+": encode spaces as %20.
    query = urlencode({name: str(value) for name, value in libpq.items()}, quote_via=quote)
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, query, ""))

    from storage._postgres import PostgresStore  # noqa: PLC0415 - psycopg is an optional extra

    return PostgresStore(conninfo, **merged)


class _Scheme(NamedTuple):
    options: Mapping[str, Parser]
    """The query parameters, also taken as keyword arguments."""
    keywords: frozenset[str]
    """Keyword arguments the query cannot carry."""
    open: Callable[[str, SplitResult, str, dict[str, Any], dict[str, Any]], Store]


_SCHEMES: Mapping[str, _Scheme] = {
    "memory": _Scheme(MEMORY_OPTIONS, frozenset({"codec"}), _open_memory),
    "sqlite": _Scheme(SQLITE_OPTIONS, frozenset({"codec"}), _open_sqlite),
    "redis": _Scheme(
        REDIS_OPTIONS, frozenset({"codec", "db", "username", "password"}), _open_redis
    ),
    "redis+cluster": _Scheme(
        REDIS_CLUSTER_OPTIONS, frozenset({"codec", "username", "password"}), _open_redis_cluster
    ),
    "postgresql": _Scheme(POSTGRES_OPTIONS, frozenset({"codec"}), _open_postgres),
    "postgres": _Scheme(POSTGRES_OPTIONS, frozenset({"codec"}), _open_postgres),
}
