"""RedisStore specifics: URLs, key layout, error mapping, unreachable and restarted servers,
processes. The store contract itself runs in test_store_contract.py."""

from __future__ import annotations

import inspect
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.exceptions
from redis.crc import key_slot

from storage import (
    ContextNotFoundError,
    CorruptSnapshotError,
    NotOwner,
    PersistenceError,
    RedisStore,
    SnapshotCodec,
    State,
    UnsupportedFormatError,
    VersionConflict,
    open_store,
)
from storage._delta import Delta
from storage._redis import REDIS_ERRORS, SCHEMA_VERSION
from storage._state import utc_now
from tests.redis_server import RedisServer, SilentLink, free_port
from tests.storage.processes import (
    assert_two_processes_never_lose_an_update,
    assert_two_processes_take_turns_with_a_lease,
)

TIMEOUT = 30.0
"""Seconds any wait in these tests may take before it counts as a hang."""


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def make_store(redis_server: RedisServer, prefix: str) -> Iterator[Callable[..., RedisStore]]:
    """Build stores on the session server under this test's prefix; all closed at the end."""
    stores: list[RedisStore] = []

    def make(**options: Any) -> RedisStore:
        options.setdefault("prefix", prefix)
        store = RedisStore("127.0.0.1", redis_server.port, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def advance(store: RedisStore, name: str, version: int | None = None) -> State:
    head = store.read_head(name)
    state = head.snapshot()
    state.version = head.version + 1 if version is None else version
    state.set("n", state.version)
    store.compare_and_set(state, head.version)
    return state


# -- open_store URLs ------------------------------------------------------------------------


def test_redis_url_with_db_and_prefix(redis_server: RedisServer) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/3?prefix=app.v2"

    with open_store(url, retain_heads=5) as store:
        assert isinstance(store, RedisStore)
        assert (store.host, store.port, store.db) == ("127.0.0.1", redis_server.port, 3)
        assert (store.prefix, store.retain_heads) == ("app.v2", 5)
        store.create(State.new("ctx"))

    with redis_server.client() as raw:
        raw.execute_command("SELECT", 3)
        assert raw.exists("app.v2:{ctx}:meta") == 1
        raw.flushdb()


def test_redis_url_defaults_and_timeouts(redis_server: RedisServer) -> None:
    url = (
        f"redis://localhost:{redis_server.port}"
        "?socket_timeout=1.5&socket_connect_timeout=0.5&change_silence=30"
    )

    with open_store(url) as store:
        assert isinstance(store, RedisStore)
        assert (store.db, store.prefix) == (0, "ctx")
        assert (store.socket_timeout, store.socket_connect_timeout) == (1.5, 0.5)
        assert store.change_silence == 30

    with open_store(f"redis://localhost:{redis_server.port}/", db=2, prefix="p") as store:
        assert isinstance(store, RedisStore)
        assert (store.db, store.prefix) == (2, "p")


def test_password_in_the_url_reaches_the_server(redis_server: RedisServer) -> None:
    # The test server has no password, so it refuses AUTH: proof the password was sent.
    with pytest.raises(PersistenceError) as caught:
        open_store(f"redis://user:s%40cret@127.0.0.1:{redis_server.port}/0")

    assert isinstance(caught.value.__cause__, redis.exceptions.RedisError)


@pytest.mark.parametrize(
    "url",
    [
        "redis://",
        "redis:127.0.0.1",
        "redis:///0",
        "redis://127.0.0.1:99999/0",
        "redis://127.0.0.1:port/0",
        "redis://127.0.0.1:{port}/x",
        "redis://127.0.0.1:{port}/-1",
        "redis://127.0.0.1:{port}/0/1",
        "redis://127.0.0.1:{port}/0?",
        "redis://127.0.0.1:{port}/0?db=1",
        "redis://127.0.0.1:{port}/0?Prefix=app",
        "redis://127.0.0.1:{port}/0?prefix",
        "redis://127.0.0.1:{port}/0?prefix=a&prefix=b",
        "redis://127.0.0.1:{port}/0?prefix=",
        "redis://127.0.0.1:{port}/0?prefix=a{b}",
        "redis://127.0.0.1:{port}/0?prefix=a*",
        "redis://127.0.0.1:{port}/0?socket_timeout=soon",
        "redis://127.0.0.1:{port}/0?socket_timeout=0",
        "redis://127.0.0.1:{port}/0?socket_connect_timeout=inf",
        "redis://127.0.0.1:{port}/0#frag",
        "rediss://127.0.0.1:{port}/0",
    ],
)
def test_bad_redis_urls_are_value_errors(url: str) -> None:
    # A closed port: a URL that got as far as connecting would fail differently.
    with pytest.raises(ValueError, match=r"URL|prefix|timeout"):
        open_store(url.replace("{port}", str(free_port())))


def test_url_and_argument_setting_the_same_option_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="both set prefix"):
        open_store(f"redis://127.0.0.1:{free_port()}/0?prefix=a", prefix="b")


@pytest.mark.parametrize(
    "options",
    [
        {"prefix": ""},
        {"prefix": "a b"},
        {"prefix": "x" * 101},
        {"db": -1},
        {"db": True},
        {"socket_timeout": 0},
        {"socket_timeout": float("nan")},
        {"socket_connect_timeout": -1.0},
        {"retain_heads": 0},
    ],
)
def test_bad_options_are_value_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by option
        RedisStore("127.0.0.1", free_port(), **options)


# -- layout ---------------------------------------------------------------------------------


def test_key_layout(make_store: Callable[..., RedisStore], redis_server: RedisServer) -> None:
    store = make_store(retain_heads=2)
    p = store.prefix
    store.create(State.new("orders", {"n": 0}))
    advance(store, "orders")
    advance(store, "orders")
    store.append(Delta("orders", 3, utc_now(), changed={"n": 3}), 2)
    point = store.create_recovery_point(store.read_head("orders"), "label")

    with redis_server.client() as raw:
        keys = {key.decode() for key in raw.scan_iter(match=f"{p}:*")}
        assert keys == {
            f"{p}:schema",
            f"{p}:point_id",
            f"{p}:{{orders}}:meta",
            f"{p}:{{orders}}:heads",
            f"{p}:{{orders}}:points",
            f"{p}:{{orders}}:point_blobs",
            f"{p}:{{orders}}:journal",
        }
        assert raw.get(f"{p}:schema") == b"2" == str(SCHEMA_VERSION).encode()
        assert raw.get(f"{p}:point_id") == str(point.point_id).encode()
        assert raw.hgetall(f"{p}:{{orders}}:meta") == {b"version": b"3"}
        heads = raw.hgetall(f"{p}:{{orders}}:heads")
        assert sorted(heads) == [b"1", b"2"]
        assert store.codec.decode(heads[b"2"]) == store.read_version("orders", 2)
        journal = raw.hgetall(f"{p}:{{orders}}:journal")
        assert list(journal) == [b"3"]
        head = store.read_version("orders", 2)
        store.codec.replay(head, [(3, journal[b"3"])])
        assert head == store.read_head("orders")
        assert head.get("n") == 3
        assert list(raw.hkeys(f"{p}:{{orders}}:points")) == [str(point.point_id).encode()]
        # Every key of one context is in one cluster slot, so one script may touch them all.
        slots = {key_slot(key.encode()) for key in keys if "{orders}" in key}
        assert slots == {key_slot(b"orders")}


def test_versions_are_ordered_exactly_at_any_size(make_store: Callable[..., RedisStore]) -> None:
    # Retention sorts versions in Lua, where numbers are doubles: compare them as decimals.
    store = make_store(retain_heads=3)
    first = State.new("ctx")
    first.version = -12
    store.create(first)
    for version in (-3, 9, 10, 2**60, 2**60 + 1):
        advance(store, "ctx", version)

    assert store.list_versions("ctx") == [2**60 + 1, 2**60, 10]
    assert store.read_head("ctx").version == 2**60 + 1
    stale = store.read_version("ctx", 2**60)
    stale.version = 2**60 + 2
    with pytest.raises(VersionConflict) as caught:
        store.compare_and_set(stale, 2**60)
    assert caught.value.actual == 2**60 + 1


def test_prefixes_and_databases_are_separate(
    make_store: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    one = make_store()
    other_prefix = make_store(prefix=f"{one.prefix}-other")
    other_db = make_store(db=1)
    one.create(State.new("shared", {"who": "one"}))
    other_prefix.create(State.new("shared", {"who": "prefix"}))

    assert one.list_contexts() == other_prefix.list_contexts() == ["shared"]
    assert one.read_head("shared").get("who") == "one"
    assert other_db.list_contexts() == []
    other_prefix.delete("shared")
    assert one.exists("shared")
    with redis_server.client() as raw:
        raw.execute_command("SELECT", 1)
        raw.flushdb()


def test_foreign_keys_matching_the_pattern_are_not_listed(
    make_store: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    store = make_store()
    store.create(State.new("mine"))
    with redis_server.client() as raw:
        raw.hset(f"{store.prefix}:{{not a name}}:meta", "version", "0")

    assert store.list_contexts() == ["mine"]


@pytest.mark.parametrize(("stamp", "match"), [(b"3", "layout version 3"), (b"x", "another")])
def test_schema_stamp_of_another_writer_is_refused(
    redis_server: RedisServer, prefix: str, stamp: bytes, match: str
) -> None:
    with redis_server.client() as raw:
        raw.set(f"{prefix}:schema", stamp)

        with pytest.raises(UnsupportedFormatError, match=match):
            RedisStore("127.0.0.1", redis_server.port, prefix=prefix)

        assert raw.get(f"{prefix}:schema") == stamp


def test_layout_1_is_stamped_2_on_open(redis_server: RedisServer, prefix: str) -> None:
    # Layout 1 had no journal, so its contexts read the same under layout 2. The new stamp
    # keeps older processes, which would ignore journal entries, from opening the prefix.
    old = State.new("old", {"n": 4})
    old.version = 4
    with redis_server.client() as raw:
        raw.set(f"{prefix}:schema", b"1")
        raw.hset(f"{prefix}:{{old}}:meta", "version", "4")
        raw.hset(f"{prefix}:{{old}}:heads", "4", SnapshotCodec().encode(old))

        with RedisStore("127.0.0.1", redis_server.port, prefix=prefix) as store:
            assert raw.get(f"{prefix}:schema") == b"2"
            assert store.read_head("old") == old
            store.append(Delta("old", 5, utc_now(), changed={"n": 5}), 4)
            assert store.read_head("old").get("n") == 5


# -- journal and batches ------------------------------------------------------------------


def delta(name: str, version: int, **changed: Any) -> Delta:
    return Delta(name, version, utc_now(), changed=changed)


def test_journal_versions_are_compared_exactly(make_store: Callable[..., RedisStore]) -> None:
    # Around 2**53, Lua numbers (doubles) cannot tell versions apart: the scripts must not.
    store = make_store(retain_heads=2)
    first = State.new("ctx", {"n": 0})
    first.version = 2**53 - 1
    store.create(first)
    for version in range(2**53, 2**53 + 3):
        store.append(delta("ctx", version, n=version), version - 1)

    assert store.read_head("ctx").get("n") == 2**53 + 2
    assert [v for v, _ in store._read_journal("ctx", 2**53)] == [2**53 + 1, 2**53 + 2]
    advance(store, "ctx", 2**53 + 3)  # snapshots 2**53 - 1 and 2**53 + 3: entries still needed
    assert len(store._read_journal("ctx", -1)) == 3
    advance(store, "ctx", 2**53 + 4)  # snapshots 2**53 + 3 and 2**53 + 4: none needed
    assert store._read_journal("ctx", -1) == []


def test_what_a_half_failed_write_leaves_above_the_head_is_ignored_then_dropped(
    make_store: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    # A script the server fails half way may have written a snapshot or an entry without
    # moving the head: readers must not take it, and the write that reaches it drops it.
    store = make_store()
    store.create(State.new("ctx", {"n": 0}))
    store.append(delta("ctx", 1, n=1), 0)
    heads, journal = f"{store.prefix}:{{ctx}}:heads", f"{store.prefix}:{{ctx}}:journal"
    with redis_server.client() as raw:
        raw.hset(heads, mapping={"2": b"stray", "7": b"stray"})
        raw.hset(journal, mapping={"2": b"stray", "3": b"stray"})

        assert store.read_head("ctx").get("n") == 1
        assert [version for version, _ in store._read_journal("ctx", -1)] == [1]
        store.append(delta("ctx", 2, n=2), 1)  # replaces entry 2, drops snapshot 2
        assert store.read_head("ctx").get("n") == 2
        head = store.read_head("ctx")
        head.version = 4
        store.compare_and_set(head, 2)  # drops snapshot 7 and entry 3

        assert sorted(raw.hkeys(heads)) == [b"0", b"4"]
        assert sorted(raw.hkeys(journal)) == [b"1", b"2"]
    assert store.read_head("ctx") == head


def test_a_batch_loads_its_scripts_itself(
    make_store: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    # A batch is one pipeline of EVALSHAs; a server restart empties the script cache.
    store = make_store()
    store.create(State.new("a", {"n": 0}))
    store.create(State.new("b", {"n": 0}))
    with redis_server.client() as raw:
        raw.script_flush()
    head = store.read_head("b")
    head.version = 1
    writes = [
        store.prepare_delta(delta("a", 1, n=1), 0),
        store.prepare_snapshot(head, 0),
        store.prepare_delta(delta("a", 2, n=2), 1),
    ]

    assert store.commit(writes) == [None, None, None]
    assert (store.head_version("a"), store.head_version("b")) == (2, 1)


def test_server_error_in_a_batch_fails_it_and_writes_nothing_of_that_write(
    make_store: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    store = make_store()
    store.create(State.new("a", {"n": 0}))
    store.create(State.new("b", {"n": 0}))
    head = store.read_head("b")
    head.version = 1
    with redis_server.client() as raw:
        raw.set(f"{store.prefix}:{{b}}:journal", "not a hash")
    writes = [
        store.prepare_delta(delta("a", 1, n=1), 0),
        store.prepare_delta(delta("b", 1, n=1), 0),
        store.prepare_delta(delta("a", 2, n=2), 1),
    ]

    with pytest.raises(PersistenceError) as caught:
        store.commit(writes)
    assert "WRONGTYPE" in str(caught.value)
    with pytest.raises(PersistenceError, match="WRONGTYPE"):
        store.compare_and_set(head, 0)  # compaction reads the journal before any write

    # Each write is atomic on its own, and the batch is not one transaction: the writes
    # around the failed one were applied, and nothing of the failed one was.
    assert store.head_version("a") == 2
    assert store.head_version("b") == 0
    assert store.list_versions("b") == [0]


# -- errors ---------------------------------------------------------------------------------


def redis_exception_classes() -> list[type[BaseException]]:
    """Every exception class redis-py's `redis.exceptions` defines."""
    return [
        value
        for value in vars(redis.exceptions).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == redis.exceptions.__name__
    ]


def instance(cls: type[BaseException]) -> BaseException:
    try:
        return cls("boom")
    except ValueError:  # AskError and MovedError parse "slot host:port"
        return cls("3999 127.0.0.1:6381")


@pytest.mark.parametrize("cls", redis_exception_classes(), ids=lambda cls: cls.__name__)
def test_every_redis_error_is_mapped(
    make_store: Callable[..., RedisStore], cls: type[BaseException]
) -> None:
    store = make_store()
    error = instance(cls)
    assert isinstance(error, REDIS_ERRORS)

    with pytest.raises(PersistenceError) as caught, store._translate("test"):
        raise error

    assert caught.value.__cause__ is error
    assert cls.__name__ in str(caught.value)


def test_our_errors_pass_through_unmapped(make_store: Callable[..., RedisStore]) -> None:
    store = make_store()
    error = ContextNotFoundError("ctx")

    with pytest.raises(ContextNotFoundError) as caught, store._translate("test"):
        raise error

    assert caught.value is error


def test_server_error_reply_is_a_persistence_error(
    make_store: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    store = make_store()
    store.create(State.new("ctx"))
    with redis_server.client() as raw:
        raw.delete(f"{store.prefix}:{{ctx}}:heads")
        raw.set(f"{store.prefix}:{{ctx}}:heads", "not a hash")

    with pytest.raises(PersistenceError) as caught:
        store.list_versions("ctx")

    assert isinstance(caught.value.__cause__, redis.exceptions.ResponseError)
    assert "WRONGTYPE" in str(caught.value)


# -- unreachable and restarted servers ------------------------------------------------------


@pytest.mark.timeout(10)
def test_closed_port_fails_fast() -> None:
    port = free_port()
    started = time.monotonic()

    with pytest.raises(PersistenceError) as caught:
        RedisStore("127.0.0.1", port, socket_timeout=1.0, socket_connect_timeout=1.0)

    assert time.monotonic() - started < 2.0
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    assert f"127.0.0.1:{port}" in str(caught.value)


@pytest.mark.timeout(10)
def test_silent_server_times_out_instead_of_hanging() -> None:
    # A socket that listens but never answers: the connect succeeds, the reply never comes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()

        with pytest.raises(PersistenceError) as caught:
            RedisStore("127.0.0.1", port, socket_timeout=0.3, socket_connect_timeout=0.3)

        elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 2.0
    assert isinstance(caught.value.__cause__, redis.exceptions.TimeoutError)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test alone, which it may kill and start again."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(30)
def test_restart_keeps_every_acknowledged_write(own_server: RedisServer) -> None:
    with RedisStore(
        "127.0.0.1", own_server.port, socket_timeout=1.0, socket_connect_timeout=1.0
    ) as store:
        store.create(State.new("ctx", {"n": 0}))
        written = [advance(store, "ctx") for _ in range(5)]
        point = store.create_recovery_point(written[2], "mid")
        store.create(State.new("gone"))
        store.delete("gone")

        own_server.kill()  # SIGKILL: nothing flushed at shutdown; appendfsync did it all

        operations: list[Callable[[], object]] = [
            lambda: store.read_head("ctx"),
            lambda: store.compare_and_set(written[-1].successor(written[-1]), 5),
            store.list_contexts,
            lambda: store.create_recovery_point(written[-1]),
        ]
        for operation in operations:
            started = time.monotonic()
            with pytest.raises(PersistenceError) as caught:
                operation()
            assert time.monotonic() - started < 2.0
            assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)

        own_server.start()

        assert store.read_head("ctx") == written[-1]
        assert store.list_versions("ctx") == [5, 4, 3]
        assert store.list_contexts() == ["ctx"]
        assert store.list_recovery_points("ctx") == [point]
        assert store.read_recovery_point("ctx", point.point_id) == written[2]
        # The store goes on working: scripts are loaded again, ids keep increasing.
        assert advance(store, "ctx").version == 6
        assert store.create_recovery_point(store.read_head("ctx")).point_id > point.point_id


@pytest.mark.timeout(30)
def test_writer_running_through_a_restart_loses_no_acknowledged_write(
    own_server: RedisServer,
) -> None:
    store = RedisStore("127.0.0.1", own_server.port, socket_timeout=1.0)
    store.create(State.new("ctx", {"n": 0}))
    acknowledged = 0
    unknown = 0  # writes that failed: applied or not, the writer cannot tell
    running = threading.Event()
    seen_outage = threading.Event()
    restarted = threading.Event()
    done = threading.Event()

    def writer() -> None:
        nonlocal acknowledged, unknown
        after_restart = 0
        while after_restart < 20:
            try:
                advance(store, "ctx")
            except PersistenceError:
                unknown += 1
                seen_outage.set()
                restarted.wait(TIMEOUT)
                continue
            except VersionConflict:  # a failed write that was applied after all
                continue
            acknowledged += 1
            if acknowledged == 20:
                running.set()
            if restarted.is_set():
                after_restart += 1
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # Let some writes land first, then crash the server under the running writer.
        assert running.wait(TIMEOUT)
        own_server.kill()
        assert seen_outage.wait(TIMEOUT)
        own_server.start()
        restarted.set()
        assert done.wait(TIMEOUT)
    finally:
        restarted.set()
        thread.join(TIMEOUT)
    head = store.read_head("ctx")
    store.close()

    assert head.get("n") == head.version
    assert acknowledged <= head.version <= acknowledged + unknown


# -- change notification ------------------------------------------------------------------


def changed_token(store: RedisStore, token: object) -> object:
    """The store's next token unlike `token`, once the message has come (within TIMEOUT)."""
    deadline = time.monotonic() + TIMEOUT
    while (now := store.change_token()) == token:
        assert time.monotonic() < deadline, "the change message never came"
        # Polling with a deadline: the message reaches the subscriber's socket on its own.
        time.sleep(0.01)
    return now


def subscribed(redis_server: RedisServer, channel: str) -> Any:
    """A raw pub/sub connection subscribed to `channel`, the subscription confirmed."""
    pubsub = redis_server.client().pubsub()
    pubsub.subscribe(channel)
    confirmation = pubsub.get_message(timeout=TIMEOUT)
    assert confirmation is not None
    assert confirmation["type"] == "subscribe"
    return pubsub


def test_change_token_moves_when_another_client_moves_a_head(
    make_store: Callable[..., RedisStore],
) -> None:
    watcher, writer = make_store(), make_store()
    writer.create(State.new("ctx", {"n": 0}))

    before = watcher.change_token()
    assert before is not None
    assert watcher.change_token() == before  # nothing written since

    advance(writer, "ctx")
    after = changed_token(watcher, before)

    assert after is not None
    assert watcher.change_token() == after  # each message counts once
    # Reads and recovery points move no head, nor does a refused write.
    writer.read_head("ctx")
    writer.create_recovery_point(writer.read_head("ctx"))
    stale = writer.read_head("ctx").snapshot()
    stale.version = 5
    with pytest.raises(VersionConflict):
        writer.compare_and_set(stale, 0)
    assert watcher.change_token() == after


def test_every_head_moving_write_publishes_its_context_and_version(
    make_store: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    store = make_store()
    listener = subscribed(redis_server, store.channel)
    assert store.channel == f"{store.prefix}:changes"
    try:
        store.create(State.new("ctx", {"n": 0}))  # create
        advance(store, "ctx")  # compare-and-set
        store.append(delta("ctx", 2, n=2), 1)  # append
        store.create(State.new("other"))
        head = store.read_head("ctx").snapshot()
        head.version = 3
        outcomes = store.commit(  # a batch: one message per write, in order
            [
                store.prepare_snapshot(head, 2),
                store.prepare_delta(delta("other", 1, n=1), 0),
                store.prepare_delta(delta("other", 1, n=9), 0),  # stale: no message
            ]
        )
        assert isinstance(outcomes[2], VersionConflict)
        # Writes that move no head publish nothing.
        with pytest.raises(VersionConflict):
            store.compare_and_set(head.successor(head), 0)
        store.create_recovery_point(store.read_head("ctx"))
        store.delete("ctx")  # delete
        with pytest.raises(ContextNotFoundError):
            store.delete("ctx")
        store.create(State.new("ctx", {"n": 0}))  # the last: anything stray came before it

        expected = [b"ctx 0", b"ctx 1", b"ctx 2", b"other 0", b"ctx 3", b"other 1"]
        expected += [b"ctx -", b"ctx 0"]
        received = []
        while len(received) < len(expected):
            message = listener.get_message(timeout=TIMEOUT)
            assert message is not None, f"only {received} came"
            assert message["channel"] == store.channel.encode()
            received.append(message["data"])
        assert received == expected
    finally:
        listener.close()


def test_head_versions_is_one_round_trip(
    make_store: Callable[..., RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store()
    store.create(State.new("a"))
    store.create(State.new("b"))
    advance(store, "b")
    advance(store, "b")
    store.create(State.new("gone"))
    store.delete("gone")
    sent = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    versions = store.head_versions(["a", "missing", "b", "gone"])

    assert versions == {"a": 0, "b": 2}
    assert len(sent) == 1


def test_lease_layout(make_store: Callable[..., RedisStore], redis_server: RedisServer) -> None:
    store = make_store()
    p = store.prefix
    store.create(State.new("orders"))
    lease = store.acquire_lease("orders", "p1", 30)
    with pytest.raises(NotOwner):
        store.acquire_lease("orders", "p2", 30)
    with redis_server.client() as raw:
        seconds, micros = raw.time()
        record = raw.hgetall(f"{p}:{{orders}}:lease")
        assert record.keys() == {b"owner", b"epoch", b"expires_at", b"wanted_by"}
        assert (record[b"owner"], record[b"epoch"], record[b"wanted_by"]) == (b"p1", b"1", b"p2")
        # The end is on the server's clock, in whole microseconds.
        left = int(record[b"expires_at"]) - (seconds * 1_000_000 + micros)
        assert 29_000_000 < left <= 30_000_000
        store.release_lease("orders", "p1", lease.epoch)
        record = raw.hgetall(f"{p}:{{orders}}:lease")
        assert record.keys() == {b"epoch", b"expires_at"}  # no owner: released
        assert record[b"epoch"] == b"1"  # kept: the next taker gets 2
        # In the context's slot, so that a write's script checks it in the same step.
        assert key_slot(f"{p}:{{orders}}:lease".encode()) == key_slot(b"orders")
        # A lease outlives its context: a context made again keeps counting epochs.
        store.delete("orders")
        assert raw.exists(f"{p}:{{orders}}:lease")
    assert store.acquire_lease("orders", "p2", 30).epoch == 2


def test_renew_of_many_leases_is_one_round_trip(
    make_store: Callable[..., RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store()
    epochs = {f"c{i}": store.acquire_lease(f"c{i}", "p1", 30).epoch for i in range(200)}
    store.acquire_lease("theirs", "p2", 30)
    sent = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    renewed = store.renew_leases("p1", {**epochs, "theirs": 1}, 60)

    assert len(sent) == 1
    assert all(renewed[name].held_by("p1", 1) for name in epochs)
    assert all(renewed[name].expires_in > 30 for name in epochs)
    assert renewed["theirs"].held_by("p2", 1)
    assert renewed["theirs"].expires_in <= 30


@pytest.mark.timeout(120)
def test_two_processes_contend_for_one_lease(redis_server: RedisServer, prefix: str) -> None:
    assert_two_processes_take_turns_with_a_lease(f"{redis_server.url}?prefix={prefix}")


@pytest.mark.timeout(30)
def test_change_token_falls_back_to_polling_through_a_restart(own_server: RedisServer) -> None:
    options = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    watcher = RedisStore("127.0.0.1", own_server.port, **options)  # type: ignore[arg-type]
    try:
        watcher.create(State.new("ctx", {"n": 0}))
        before = watcher.change_token()
        assert before is not None

        own_server.kill()
        for _ in range(2):  # the broken subscription, then a server that refuses
            started = time.monotonic()
            assert watcher.change_token() is None  # unknown: read the heads
            assert time.monotonic() - started < 2.0
        own_server.start()

        again = watcher.change_token()  # subscribed again: a token unlike any before
        assert again is not None
        assert again != before
        assert watcher.change_token() == again
        with RedisStore("127.0.0.1", own_server.port) as writer:
            advance(writer, "ctx")
        changed_token(watcher, again)
    finally:
        watcher.close()


def test_read_latest_reads_in_one_step_and_ignores_records_above_the_head(
    make_store: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    store = make_store()
    store.create(State.new("ctx", {"n": 0}))
    for version in range(1, 4):
        store.append(Delta("ctx", version, utc_now(), {"n": version}), version - 1)
    p = store.prefix
    with redis_server.client() as raw:
        # Left by a write that failed half way: above the head version, so not the head's.
        raw.hset(f"{p}:{{ctx}}:journal", "4", b"junk")
        raw.hset(f"{p}:{{ctx}}:heads", "5", b"junk")
    state, damage = store.read_latest("ctx")
    assert damage == ()
    assert (state.version, state.data) == (3, {"n": 3})
    with redis_server.client() as raw:
        raw.delete(f"{p}:{{ctx}}:heads")
    with pytest.raises(CorruptSnapshotError, match="no snapshot at or below head version 3"):
        store.read_head("ctx")


@pytest.mark.timeout(30)
def test_change_token_gives_up_a_subscription_that_went_silent(
    make_store: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    # A connection whose peer vanishes without closing it reads as "no changes" forever;
    # change_token() must notice (a PING with no answer) and say it does not know.
    link = SilentLink(redis_server.port)
    writer = make_store()
    writer.create(State.new("ctx", {"n": 0}))
    watcher = RedisStore(
        "127.0.0.1", link.port, prefix=writer.prefix, socket_timeout=0.5, change_silence=0.2
    )
    try:
        before = watcher.change_token()
        assert before is not None
        link.freeze()
        advance(writer, "ctx")  # published; the watcher's connection never hears of it
        deadline = time.monotonic() + 10
        while (token := watcher.change_token()) is not None:
            assert token == before  # silence, until the unanswered PING gives it away
            assert time.monotonic() < deadline, "a silent subscription was never noticed"
        link.thaw()
        again = watcher.change_token()  # subscribed again, on a new connection
        assert again is not None
        assert again != before
        advance(writer, "ctx")
        changed_token(watcher, again)
    finally:
        watcher.close()
        link.close()


def test_bad_change_silence_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="change_silence"):
        RedisStore("127.0.0.1", free_port(), change_silence=0)


def test_close_ends_the_subscription(
    make_store: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    store = make_store()
    store.change_token()
    with redis_server.client() as raw:
        assert raw.pubsub_numsub(store.channel) == [(store.channel.encode(), 1)]

        store.close()

        with pytest.raises(PersistenceError, match="closed"):
            store.change_token()
        deadline = time.monotonic() + TIMEOUT
        while raw.pubsub_numsub(store.channel) != [(store.channel.encode(), 0)]:
            assert time.monotonic() < deadline, "the subscription outlived close()"
            time.sleep(0.01)  # the server notices the closed socket on its own time


# -- two processes --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_two_processes_never_lose_an_update(redis_server: RedisServer, prefix: str) -> None:
    assert_two_processes_never_lose_an_update(f"{redis_server.url}?prefix={prefix}")


# -- redis-py is optional -------------------------------------------------------------------


def test_storage_works_without_redis_py(tmp_path: Path) -> None:
    # A None entry in sys.modules makes `import redis` fail, as if it were not installed.
    program = f"""
import sys
sys.modules["redis"] = None
import storage
assert "storage._redis" not in sys.modules
with storage.open_store("sqlite:///{tmp_path}/x.db") as store:
    store.create(storage.State.new("ctx"))
for attempt in (lambda: storage.RedisStore, lambda: storage.open_store("redis://localhost")):
    try:
        attempt()
    except ImportError as exc:
        assert "context-runtime[redis]" in str(exc), exc
    else:
        raise AssertionError("no ImportError")
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
