"""Store options in URLs: each one parsed and applied for real, every mistake a
`ConfigurationError` naming the option and the value.

The URL forms themselves (paths, hosts, ports, databases) are tested in test_sqlite.py and
test_redis.py; this file tests the query options all schemes share the parsing of.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from storage import (
    ConfigurationError,
    MemoryStore,
    PersistenceError,
    SqliteStore,
    State,
    open_store,
)
from storage._redis import RedisStore
from storage._url import URL_OPTIONS
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent.parent


def sqlite_url(tmp_path: Path, query: str = "") -> str:
    return f"sqlite:///{tmp_path / 'u.db'}{query}"


def advance(store: Any, name: str) -> None:
    head = store.read_head(name)
    state = head.snapshot()
    state.version = head.version + 1
    store.compare_and_set(state, head.version)


# -- SQLite --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level", "name"),
    [("off", 0, "OFF"), ("normal", 1, "NORMAL"), ("Full", 2, "FULL"), ("EXTRA", 3, "EXTRA")],
)
def test_sqlite_synchronous_from_the_url_is_the_connections_pragma(
    tmp_path: Path, text: str, level: int, name: str
) -> None:
    with open_store(sqlite_url(tmp_path, f"?synchronous={text}")) as store:
        assert isinstance(store, SqliteStore)
        assert store.synchronous == name
        assert store.pragmas()["synchronous"] == level


def test_sqlite_busy_timeout_from_the_url_is_the_connections_pragma(tmp_path: Path) -> None:
    with open_store(sqlite_url(tmp_path, "?busy_timeout=2.5&retain_heads=5")) as store:
        assert isinstance(store, SqliteStore)
        assert store.busy_timeout == 2.5
        assert store.pragmas() == {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 2500}
        assert store.retain_heads == 5


def test_sqlite_defaults_are_full_and_ten_seconds(tmp_path: Path) -> None:
    with open_store(sqlite_url(tmp_path)) as store:
        assert store.pragmas() == {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 10_000}
        assert store.retain_heads == 3


def test_sqlite_busy_timeout_bounds_the_wait_for_a_lock(tmp_path: Path) -> None:
    with open_store(sqlite_url(tmp_path, "?busy_timeout=0.2")) as store:
        blocker = sqlite3.connect(tmp_path / "u.db", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
            started = time.monotonic()
            with pytest.raises(PersistenceError, match="locked"):
                store.create(State.new("ctx"))
            waited = time.monotonic() - started
        finally:
            blocker.close()
    assert 0.15 <= waited < 5.0


def test_retain_heads_from_the_url_drops_older_snapshots(tmp_path: Path) -> None:
    for url in ("memory://?retain_heads=1", sqlite_url(tmp_path, "?retain_heads=1")):
        with open_store(url) as store:
            store.create(State.new("ctx"))
            advance(store, "ctx")
            advance(store, "ctx")
            assert store.list_versions("ctx") == [2], url


def test_memory_url_takes_retain_heads() -> None:
    with open_store("memory://?retain_heads=7") as store:
        assert isinstance(store, MemoryStore)
        assert store.retain_heads == 7


# -- Redis ---------------------------------------------------------------------------------


def test_redis_url_options_reach_the_client(redis_server: RedisServer) -> None:
    url = (
        f"redis://127.0.0.1:{redis_server.port}/0?socket_timeout=1.5"
        "&socket_connect_timeout=0.25&change_silence=30&retain_heads=4&prefix=url.test"
    )
    with open_store(url) as store:
        assert isinstance(store, RedisStore)
        client_options = store._client.connection_pool.connection_kwargs
        assert client_options["socket_timeout"] == 1.5
        assert client_options["socket_connect_timeout"] == 0.25
        assert store.change_silence == 30.0
        assert store.retain_heads == 4
        store.create(State.new("ctx"))
        for _ in range(5):
            advance(store, "ctx")
        assert store.list_versions("ctx") == [5, 4, 3, 2]

    with redis_server.client() as raw:
        assert raw.exists("url.test:{ctx}:meta") == 1
        raw.delete(*raw.keys("url.test:*"))


def test_redis_prefix_is_percent_decoded() -> None:
    # A prefix with a space is refused by the store, so the decoded value reached it.
    with pytest.raises(ConfigurationError, match="'a b'"):
        open_store(f"redis://127.0.0.1:{free_port()}/0?prefix=a%20b")


# -- refusals ------------------------------------------------------------------------------


def _refusal_urls() -> list[tuple[str, str]]:
    """(URL, text the error must contain); "{db}" and "{port}" are filled in by the test."""
    redis = "redis://127.0.0.1:{port}/0"
    postgres = "postgresql://127.0.0.1:{port}/db"
    cases = []
    for base in ("memory://", "sqlite:///{db}", redis, postgres, "postgres://127.0.0.1:{port}"):
        cases += [
            (f"{base}?nosuch=1", "'nosuch' is unknown"),
            (f"{base}?Retain_heads=1", "'Retain_heads' is unknown"),
            (f"{base}?retain_heads=2&retain_heads=2", "repeats option 'retain_heads'"),
            (f"{base}?retain_heads", "'retain_heads' has no value"),
            (f"{base}?retain_heads=", "retain_heads must be a whole number"),
            (
                f"{base}?retain_heads=two",
                "retain_heads must be a whole number such as 3, got 'two'",
            ),
            (f"{base}?retain_heads=-1", "got '-1'"),
            (f"{base}?retain_heads=0", "retain_heads must be a whole number of at least 1, got 0"),
            (f"{base}?", "empty query"),
            (f"{base}?retain_heads=1&", "'' is unknown"),
            (f"{base}?codec=zstd", "'codec' is unknown"),
        ]
    for option in ("busy_timeout",):
        cases += [
            (
                f"sqlite:///{{db}}?{option}=soon",
                f"{option} must be a number of seconds such as 2 or 0.5, got 'soon'",
            ),
            (f"sqlite:///{{db}}?{option}=inf", "got 'inf'"),
            (f"sqlite:///{{db}}?{option}=nan", "got 'nan'"),
            (f"sqlite:///{{db}}?{option}=1e3", "got '1e3'"),
            (f"sqlite:///{{db}}?{option}=-1", "got '-1'"),
            (f"sqlite:///{{db}}?{option}=9999999", f"{option} must be a number of seconds from 0"),
        ]
    cases += [
        ("sqlite:///{db}?synchronous=sometimes", "synchronous must be one of off, normal"),
        ("sqlite:///{db}?synchronous=2", "got '2'"),
        ("sqlite:///{db}?journal_mode=delete", "'journal_mode' is unknown"),
        ("sqlite:///{db}?synchronous=full&synchronous=off", "repeats option 'synchronous'"),
    ]
    for option in ("socket_timeout", "socket_connect_timeout", "change_silence"):
        cases += [
            (
                f"{redis}?{option}=soon",
                f"{option} must be a number of seconds such as 2 or 0.5, got 'soon'",
            ),
            (f"{redis}?{option}=0", f"{option} must be a positive number of seconds, not 0.0"),
            (f"{redis}?{option}=2s", "got '2s'"),
        ]
    cases += [
        (f"{redis}?db=1", "'db' is unknown"),
        (f"{redis}?password=x", "'password' is unknown"),
        (f"{redis}?prefix=", "prefix must be 1 to 100"),
        (f"{redis}?prefix=a*", "prefix must be 1 to 100"),
        (f"{redis}?prefix=%ff", "not UTF-8"),
        (f"{postgres}?timeout=soon", "timeout must be a number of seconds such as 2 or 0.5"),
        (f"{postgres}?timeout=0", "timeout must be a positive number of seconds, not 0.0"),
        (f"{postgres}?pool_size=0", "pool_size must be a whole number of at least 1, not 0"),
        (f"{postgres}?pool_size=many", "pool_size must be a whole number such as 3"),
        (f"{postgres}?schema=Orders", "schema must be 1 to 48 lowercase ASCII letters"),
        (f"{postgres}?schema=1x", "schema must be 1 to 48"),
        (f"{postgres}?schema=" + "x" * 49, "schema must be 1 to 48"),
        (f"{postgres}?synchronous_commit=sometimes", "synchronous_commit must be one of off"),
        (f"{postgres}?connect_timeout=soon", "connect_timeout must be a whole number"),
        (f"{postgres}?password=x", "'password' is unknown"),
        (f"{postgres}?dbname=x", "'dbname' is unknown"),
        (f"{postgres}?sslmod=require", "'sslmod' is unknown"),
        ("postgresql:/127.0.0.1/db", "must be postgresql://"),
    ]
    return cases


@pytest.mark.parametrize(("url", "says"), _refusal_urls())
def test_bad_options_are_configuration_errors_naming_them(
    url: str, says: str, tmp_path: Path
) -> None:
    url = url.replace("{db}", str(tmp_path / "x.db")).replace("{port}", str(free_port()))

    with pytest.raises(ConfigurationError) as caught:
        open_store(url)

    assert says in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing was opened


@pytest.mark.parametrize(
    ("url", "options", "says"),
    [
        ("sqlite:///{db}?busy_timeout=1", {"busy_timeout": 2.0}, "both set busy_timeout"),
        ("sqlite:///{db}?busy_timeout=1", {"busy_timeout": 1.0}, "both set busy_timeout"),
        ("memory://?retain_heads=2", {"retain_heads": 3}, "both set retain_heads"),
        ("redis://127.0.0.1:{port}/1", {"db": 2}, "both set db"),
        ("redis://u:p@127.0.0.1:{port}/1", {"password": "q"}, "both set password"),
        ("redis://127.0.0.1:{port}?prefix=a", {"prefix": "b"}, "both set prefix"),
        ("sqlite:///{db}", {"bogus": 1}, "unknown sqlite store option 'bogus'"),
        ("sqlite:///{db}", {"prefix": "x"}, "unknown sqlite store option 'prefix'"),
        ("memory://", {"synchronous": "FULL"}, "unknown memory store option 'synchronous'"),
        ("redis://127.0.0.1:{port}", {"host": "x"}, "unknown redis store option 'host'"),
        ("postgresql://127.0.0.1:{port}/db?schema=a", {"schema": "b"}, "both set schema"),
        ("postgresql://127.0.0.1:{port}/db", {"bogus": 1}, "unknown postgresql store option"),
        ("postgresql://127.0.0.1:{port}/db", {"timeout": "5"}, "timeout must be a positive"),
        ("sqlite:///{db}", {"synchronous": "normal"}, "synchronous must be OFF, NORMAL"),
        ("sqlite:///{db}", {"busy_timeout": "5"}, "busy_timeout must be a number of seconds"),
    ],
)
def test_url_and_argument_options_are_checked_together(
    url: str, options: dict[str, Any], says: str, tmp_path: Path
) -> None:
    url = url.replace("{db}", str(tmp_path / "x.db")).replace("{port}", str(free_port()))

    with pytest.raises(ConfigurationError, match=says):
        open_store(url, **options)

    assert list(tmp_path.iterdir()) == []


def test_argument_options_still_reach_the_store(tmp_path: Path) -> None:
    with open_store(sqlite_url(tmp_path, "?synchronous=normal"), busy_timeout=0.5) as store:
        assert store.pragmas()["busy_timeout"] == 500
        assert store.pragmas()["synchronous"] == 1


@pytest.mark.parametrize(
    "url",
    ["nosuch:///x.db", "postgresql+psycopg://host/db", "rediss://host/0", "x.db", "", "SQLITE"],
)
def test_unknown_scheme_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown store URL scheme"):
        open_store(url)


@pytest.mark.parametrize("url", [Path("x.db"), b"memory://", None])
def test_a_url_that_is_not_a_str_is_a_configuration_error(url: Any) -> None:
    with pytest.raises(ConfigurationError, match="must be a str") as caught:
        open_store(url)
    assert isinstance(caught.value, TypeError)


def test_errors_do_not_show_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_store(f"redis://user:s3cr%40t@127.0.0.1:{free_port()}/0?nosuch=1")

    assert "s3cr" not in str(caught.value)
    assert "user:***@127.0.0.1" in str(caught.value)


def test_every_url_option_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for scheme, table in URL_OPTIONS.items():
        for option in table:
            assert f"`{option}`" in doc, f"{scheme}:// option {option} is not documented"
