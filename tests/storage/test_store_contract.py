"""The store contract, run against every backend.

To add a backend, add one `Backend` entry to `BACKENDS`: a factory and a way to plant damage
in a stored head blob. Every test here then runs against it. A factory gets the test's
`request`, so a backend that needs a server asks for its fixture only when it runs.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from storage import (
    ContextExistsError,
    ContextNotFoundError,
    CorruptSnapshotError,
    InvalidArgumentError,
    InvalidContextNameError,
    MemoryStore,
    PersistenceError,
    PostgresStore,
    RecoveryPointNotFoundError,
    RedisStore,
    SnapshotCodec,
    SnapshotNotFoundError,
    SqliteStore,
    State,
    StateError,
    StateTooLargeError,
    Store,
    VersionConflict,
)
from tests.postgres_server import PostgresServer, fresh_schema
from tests.redis_cluster import cluster_store, raw_cluster_client
from tests.redis_server import RedisServer

TIMEOUT = 30.0
"""Seconds any wait in these tests may take before it counts as a hang."""


def flip_last_byte(blob: bytes) -> bytes:
    """The blob with its last byte inverted: inside the zstd frame, so the CRC must catch it."""
    return blob[:-1] + bytes([blob[-1] ^ 0xFF])


@dataclass(frozen=True)
class Backend:
    """How the contract suite builds and damages one kind of store."""

    name: str
    factory: Callable[..., Store]
    """`factory(request, tmp_path, **options)`: a new, empty store; options go to its
    constructor."""
    corrupt: Callable[[Store, str, int], None]
    """`corrupt(store, name, version)`: damage the stored head blob of that version in place."""


def _memory_factory(request: pytest.FixtureRequest, tmp_path: Path, **options: Any) -> Store:
    return MemoryStore(**options)


def _memory_corrupt(store: Store, name: str, version: int) -> None:
    assert isinstance(store, MemoryStore)
    # MemoryStore keeps the blob encode() made; encoding the same State again rebuilds it.
    blob = store.codec.encode(store.read_version(name, version))
    store.corrupt(name, version, flip_last_byte(blob))


def _sqlite_factory(request: pytest.FixtureRequest, tmp_path: Path, **options: Any) -> Store:
    return SqliteStore(tmp_path / "contract.db", **options)


def _sqlite_corrupt(store: Store, name: str, version: int) -> None:
    assert isinstance(store, SqliteStore)
    with sqlite3.connect(store.path) as conn:
        (blob,) = conn.execute(
            "SELECT blob FROM snapshots WHERE context = ? AND version = ?", (name, version)
        ).fetchone()
        conn.execute(
            "UPDATE snapshots SET blob = ? WHERE context = ? AND version = ?",
            (flip_last_byte(blob), name, version),
        )
    conn.close()


def _redis_factory(request: pytest.FixtureRequest, tmp_path: Path, **options: Any) -> Store:
    server: RedisServer = request.getfixturevalue("redis_server")
    # The server is shared by the session; a fresh prefix gives each test an empty store.
    prefix = f"test-{uuid.uuid4().hex}"
    return RedisStore("127.0.0.1", server.port, prefix=prefix, **options)


def _redis_corrupt(store: Store, name: str, version: int) -> None:
    assert isinstance(store, RedisStore)
    # The key layout of docs/storage.md, written by hand: a raw client, not the store.
    key = f"{store.prefix}:{{{name}}}:heads"
    with redis.Redis(host=store.host, port=store.port, db=store.db) as client:
        blob = client.hget(key, str(version))
        assert isinstance(blob, bytes)
        client.hset(key, str(version), flip_last_byte(blob))


def _redis_cluster_factory(request: pytest.FixtureRequest, tmp_path: Path, **options: Any) -> Store:
    return cluster_store(request, **options)


def _valkey_cluster_factory(
    request: pytest.FixtureRequest, tmp_path: Path, **options: Any
) -> Store:
    return cluster_store(request, "valkey_cluster", **options)


def _redis_cluster_corrupt(store: Store, name: str, version: int) -> None:
    key = f"{store.prefix}:{{{name}}}:heads"  # type: ignore[attr-defined]
    with raw_cluster_client(store) as client:
        blob = client.hget(key, str(version))
        assert isinstance(blob, bytes)
        client.hset(key, str(version), flip_last_byte(blob))


def _postgres_factory(request: pytest.FixtureRequest, tmp_path: Path, **options: Any) -> Store:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    # The server is shared by the session; a fresh schema gives each test an empty store.
    return PostgresStore(server.conninfo, schema=fresh_schema(), **options)


def _postgres_corrupt(store: Store, name: str, version: int) -> None:
    assert isinstance(store, PostgresStore)
    # The schema of docs/storage-postgres.md, written by hand: a raw connection, not the store.
    with psycopg.connect(**store._params, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {store.schema}.snapshots SET blob = "
            "overlay(blob placing set_byte(substring(blob from length(blob)), 0, "
            "get_byte(substring(blob from length(blob)), 0) # 255) from length(blob)) "
            "WHERE context = %s AND version = %s",
            (name, version),
        )


BACKENDS = [
    Backend("memory", _memory_factory, _memory_corrupt),
    Backend("sqlite", _sqlite_factory, _sqlite_corrupt),
    Backend("redis", _redis_factory, _redis_corrupt),
    Backend("redis_cluster", _redis_cluster_factory, _redis_cluster_corrupt),  # 6.2: polling
    Backend("valkey_cluster", _valkey_cluster_factory, _redis_cluster_corrupt),  # sharded
    Backend("postgres", _postgres_factory, _postgres_corrupt),
]


@pytest.fixture(params=BACKENDS, ids=[backend.name for backend in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    result: Backend = request.param
    return result


@pytest.fixture
def make_store(
    backend: Backend, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Store]]:
    """Build stores of the backend under test; every one is closed when the test ends."""
    stores: list[Store] = []

    def make(**options: Any) -> Store:
        store = backend.factory(request, tmp_path, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


def next_state(state: State, version: int | None = None, **changes: Any) -> State:
    """A copy of `state` at the next (or the given) version, with `changes` set."""
    result = state.snapshot()
    result.version = state.version + 1 if version is None else version
    for key, value in changes.items():
        result.set(key, value)
    return result


def advance(store: Store, name: str, **changes: Any) -> State:
    """Compare-and-set the head of `name` to its next version; return what was written."""
    head = store.read_head(name)
    state = next_state(head, **changes)
    store.compare_and_set(state, head.version)
    return state


# -- create, read, exists, delete -----------------------------------------------------------


def test_create_then_read_head(store: Store) -> None:
    state = State.new("ctx", {"a": 1, "nested": {"l": [1, 2]}}, {"owner": "me"})

    store.create(state)

    assert store.read_head("ctx") == state
    assert store.head_version("ctx") == 0
    assert store.exists("ctx")
    assert store.list_versions("ctx") == [0]


def test_read_head_returns_an_independent_state(store: Store) -> None:
    store.create(State.new("ctx", {"l": [1]}))

    first = store.read_head("ctx")
    first.get("l").append(2)
    first.set("other", True)

    assert store.read_head("ctx").data == {"l": [1]}


def test_create_keeps_the_given_version(store: Store) -> None:
    state = State.new("ctx")
    state.version = 5

    store.create(state)

    assert store.head_version("ctx") == 5
    store.compare_and_set(next_state(state), 5)
    assert store.head_version("ctx") == 6


def test_create_twice_raises_and_keeps_the_first(store: Store) -> None:
    first = State.new("ctx", {"who": "first"})
    store.create(first)

    with pytest.raises(ContextExistsError) as caught:
        store.create(State.new("ctx", {"who": "second"}))

    assert caught.value.name == "ctx"
    assert store.read_head("ctx") == first


def test_missing_context(store: Store) -> None:
    assert not store.exists("nope")
    with pytest.raises(ContextNotFoundError):
        store.read_head("nope")
    with pytest.raises(ContextNotFoundError):
        store.head_version("nope")
    with pytest.raises(ContextNotFoundError):
        store.list_versions("nope")
    with pytest.raises(ContextNotFoundError):
        store.read_version("nope", 0)


def test_delete(store: Store) -> None:
    store.create(State.new("ctx", {"a": 1}))
    store.create(State.new("other"))
    advance(store, "ctx", b=2)

    store.delete("ctx")

    assert not store.exists("ctx")
    assert store.list_contexts() == ["other"]
    with pytest.raises(ContextNotFoundError):
        store.read_head("ctx")
    with pytest.raises(ContextNotFoundError):
        store.list_versions("ctx")
    with pytest.raises(ContextNotFoundError) as caught:
        store.delete("ctx")
    assert caught.value.name == "ctx"

    # The name is free again, and nothing of the old context shows through.
    store.create(State.new("ctx"))
    assert store.read_head("ctx").data == {}
    assert store.list_versions("ctx") == [0]


def test_list_contexts_is_sorted(store: Store) -> None:
    assert store.list_contexts() == []
    names = ["b", "a", "c-2", "C", "a.1", "_x", "0"]
    for name in names:
        store.create(State.new(name))

    assert store.list_contexts() == sorted(names)


# -- compare-and-set ------------------------------------------------------------------------


def test_head_versions_of_existing_contexts_only(store: Store) -> None:
    store.create(State.new("a"))
    store.create(State.new("b"))
    store.compare_and_set(next_state(store.read_head("b")), 0)
    assert store.head_versions(["a", "b", "missing"]) == {"a": 0, "b": 1}
    assert store.head_versions([]) == {}
    with pytest.raises(InvalidContextNameError):
        store.head_versions(["../x"])


def test_read_heads_reads_the_stored_ones_in_the_order_given(store: Store) -> None:
    store.create(State.new("a", {"n": 0}))
    store.create(State.new("b", {"n": 0}))
    advance(store, "b", n=1)
    advance(store, "b", n=2)

    heads = store.read_heads(["b", "missing", "a", "b"])

    assert list(heads) == ["b", "a"]  # missing left out, the repeat read once
    assert heads == {"b": store.read_head("b"), "a": store.read_head("a")}
    assert heads["b"].get("n") == 2
    assert store.read_heads([]) == {}


def test_read_heads_across_many_names(store: Store) -> None:
    # More names than one statement binds on SQLite (500): every chunk is read.
    names = [f"c{i:04d}" for i in range(1_200)]
    for name in (names[0], names[600], names[-1]):
        store.create(State.new(name, {"at": name}))

    heads = store.read_heads(names)

    assert {name: state.get("at") for name, state in heads.items()} == {
        names[0]: names[0],
        names[600]: names[600],
        names[-1]: names[-1],
    }
    assert store.head_versions(names) == {names[0]: 0, names[600]: 0, names[-1]: 0}


def test_read_heads_returns_independent_states(store: Store) -> None:
    store.create(State.new("ctx", {"l": [1]}))
    store.read_heads(["ctx"])["ctx"].get("l").append(2)
    assert store.read_heads(["ctx"])["ctx"].data == {"l": [1]}


@pytest.mark.parametrize(
    ("names", "error", "named"),
    [
        (["ok", "../x"], InvalidContextNameError, "'../x'"),
        (["ok", 7], InvalidContextNameError, "7"),
        ("ok", InvalidArgumentError, "'ok'"),
    ],
)
def test_read_heads_refuses_bad_names(
    store: Store, names: Any, error: type[Exception], named: str
) -> None:
    store.create(State.new("ok"))
    with pytest.raises(error, match=re.escape(named)):
        store.read_heads(names)


def test_compare_and_set_fresh(store: Store) -> None:
    store.create(State.new("ctx", {"n": 0}))
    state = next_state(store.read_head("ctx"), n=1)

    store.compare_and_set(state, 0)

    assert store.head_version("ctx") == 1
    assert store.read_head("ctx") == state
    assert store.list_versions("ctx") == [1, 0]


def test_compare_and_set_stale_raises_and_writes_nothing(store: Store) -> None:
    store.create(State.new("ctx", {"n": 0}))
    base = store.read_head("ctx")
    winner = advance(store, "ctx", n=1)

    with pytest.raises(VersionConflict) as caught:
        store.compare_and_set(next_state(base, n=99), 0)

    assert caught.value.name == "ctx"
    assert caught.value.expected == 0
    assert caught.value.actual == 1
    assert store.read_head("ctx") == winner
    assert store.list_versions("ctx") == [1, 0]


def test_compare_and_set_expecting_a_future_version_conflicts(store: Store) -> None:
    store.create(State.new("ctx"))

    with pytest.raises(VersionConflict) as caught:
        store.compare_and_set(next_state(State.new("ctx"), version=4), 3)

    assert (caught.value.expected, caught.value.actual) == (3, 0)
    assert store.list_versions("ctx") == [0]


@pytest.mark.parametrize("version", [0, -1])
def test_compare_and_set_with_a_version_that_does_not_advance(store: Store, version: int) -> None:
    store.create(State.new("ctx", {"n": 0}))

    with pytest.raises(StateError):
        store.compare_and_set(next_state(store.read_head("ctx"), version=version, n=1), 0)

    assert store.head_version("ctx") == 0
    assert store.read_head("ctx").data == {"n": 0}


def test_compare_and_set_on_missing_context(store: Store) -> None:
    with pytest.raises(ContextNotFoundError):
        store.compare_and_set(next_state(State.new("nope")), 0)

    assert not store.exists("nope")


def test_state_over_the_size_limit_is_never_written(make_store: Callable[..., Store]) -> None:
    store = make_store(codec=SnapshotCodec(max_state_bytes=500))

    with pytest.raises(StateTooLargeError):
        store.create(State.new("big", {"x": "y" * 1000}))
    assert not store.exists("big")

    store.create(State.new("ctx"))
    with pytest.raises(StateTooLargeError):
        store.compare_and_set(next_state(State.new("ctx"), x="y" * 1000), 0)
    assert store.list_versions("ctx") == [0]


# -- retained versions ----------------------------------------------------------------------


@pytest.mark.parametrize("retain", [1, 2, 3, 5])
def test_retention_keeps_exactly_the_last_n_heads(
    make_store: Callable[..., Store], retain: int
) -> None:
    store = make_store(retain_heads=retain)
    store.create(State.new("ctx", {"n": 0}))
    written = {0: store.read_head("ctx")}
    for n in range(1, 10):
        written[n] = advance(store, "ctx", n=n)

    kept = list(range(9, 9 - retain, -1))
    assert store.list_versions("ctx") == kept
    for version in kept:
        assert store.read_version("ctx", version) == written[version]
    for version in range(10 - retain):
        with pytest.raises(SnapshotNotFoundError) as caught:
            store.read_version("ctx", version)
        assert (caught.value.name, caught.value.version) == ("ctx", version)


def test_retention_counts_snapshots_not_version_numbers(
    make_store: Callable[..., Store],
) -> None:
    # A writer may skip versions (compare_and_set only needs a greater one); retention still
    # keeps the last N snapshots, however far apart their versions are.
    store = make_store(retain_heads=3)
    store.create(State.new("ctx"))
    head = store.read_head("ctx")
    for version in (1, 10, 50, 51):
        state = next_state(head, version=version)
        store.compare_and_set(state, head.version)
        head = state

    assert store.list_versions("ctx") == [51, 50, 10]
    assert store.read_version("ctx", 10).version == 10


def test_read_version_never_written(store: Store) -> None:
    store.create(State.new("ctx"))

    with pytest.raises(SnapshotNotFoundError):
        store.read_version("ctx", 7)


def test_retain_heads_must_be_positive(make_store: Callable[..., Store]) -> None:
    with pytest.raises(ValueError, match="retain_heads"):
        make_store(retain_heads=0)


# -- recovery points ------------------------------------------------------------------------


def test_recovery_points_create_list_read_delete(store: Store) -> None:
    store.create(State.new("ctx", {"n": 0}))
    first_state = store.read_head("ctx")
    first = store.create_recovery_point(first_state, "before migration")
    second_state = advance(store, "ctx", n=1)
    second = store.create_recovery_point(second_state)

    assert first.context == second.context == "ctx"
    assert (first.version, first.label) == (0, "before migration")
    assert (second.version, second.label) == (1, None)
    assert first.point_id < second.point_id
    assert first.created_at.utcoffset() is not None
    assert store.list_recovery_points("ctx") == [first, second]
    assert store.read_recovery_point("ctx", first.point_id) == first_state
    assert store.read_recovery_point("ctx", second.point_id) == second_state

    store.delete_recovery_point("ctx", first.point_id)

    assert store.list_recovery_points("ctx") == [second]
    with pytest.raises(RecoveryPointNotFoundError):
        store.read_recovery_point("ctx", first.point_id)
    with pytest.raises(RecoveryPointNotFoundError):
        store.delete_recovery_point("ctx", first.point_id)


def test_recovery_points_are_named_by_the_point_or_its_id(store: Store) -> None:
    store.create(State.new("ctx", {"n": 0}))
    store.create(State.new("other"))
    point = store.create_recovery_point(store.read_head("ctx"))
    foreign = store.create_recovery_point(store.read_head("other"))
    assert store.read_recovery_point("ctx", point) == store.read_head("ctx")
    for bad in ("1", None, 1.5, True, foreign):
        with pytest.raises(InvalidArgumentError):
            store.read_recovery_point("ctx", bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            store.delete_recovery_point("ctx", bad)  # type: ignore[arg-type]
    store.delete_recovery_point("ctx", point)
    assert store.list_recovery_points("ctx") == []
    assert store.list_recovery_points("other") == [foreign]


def test_recovery_points_outlive_head_retention(make_store: Callable[..., Store]) -> None:
    store = make_store(retain_heads=1)
    store.create(State.new("ctx", {"n": 0}))
    point = store.create_recovery_point(store.read_head("ctx"))
    for n in range(1, 5):
        advance(store, "ctx", n=n)

    assert store.list_versions("ctx") == [4]
    assert store.read_recovery_point("ctx", point.point_id).data == {"n": 0}


def test_unknown_recovery_point(store: Store) -> None:
    store.create(State.new("ctx"))
    store.create(State.new("other"))
    point = store.create_recovery_point(store.read_head("other"))

    for name, point_id in [("ctx", 999_999), ("ctx", point.point_id), ("nope", point.point_id)]:
        with pytest.raises(RecoveryPointNotFoundError) as caught:
            store.read_recovery_point(name, point_id)
        assert (caught.value.name, caught.value.point_id) == (name, point_id)
        with pytest.raises(RecoveryPointNotFoundError):
            store.delete_recovery_point(name, point_id)

    assert store.list_recovery_points("other") == [point]


def test_recovery_points_of_missing_context(store: Store) -> None:
    with pytest.raises(ContextNotFoundError):
        store.create_recovery_point(State.new("nope"))
    with pytest.raises(ContextNotFoundError):
        store.list_recovery_points("nope")


def test_recovery_point_label_must_be_str(store: Store) -> None:
    store.create(State.new("ctx"))

    with pytest.raises(StateError):
        store.create_recovery_point(store.read_head("ctx"), 5)  # type: ignore[arg-type]

    assert store.list_recovery_points("ctx") == []


def test_recovery_points_are_deleted_with_their_context(store: Store) -> None:
    store.create(State.new("ctx"))
    point = store.create_recovery_point(store.read_head("ctx"), "x")

    store.delete("ctx")
    store.create(State.new("ctx"))

    assert store.list_recovery_points("ctx") == []
    with pytest.raises(RecoveryPointNotFoundError):
        store.read_recovery_point("ctx", point.point_id)


# -- damage ---------------------------------------------------------------------------------


def test_corrupt_head_is_detected_never_returned(backend: Backend, store: Store) -> None:
    store.create(State.new("ctx", {"n": 0}))
    previous = advance(store, "ctx", n=1)
    advance(store, "ctx", n=2)

    backend.corrupt(store, "ctx", 2)

    with pytest.raises(CorruptSnapshotError):
        store.read_head("ctx")
    with pytest.raises(CorruptSnapshotError):
        store.read_version("ctx", 2)
    # The metadata and the older retained heads are still there to recover from.
    assert store.head_version("ctx") == 2
    assert store.read_version("ctx", 1) == previous


def test_read_heads_names_the_damaged_context(backend: Backend, store: Store) -> None:
    store.create(State.new("fine"))
    store.create(State.new("ctx", {"n": 0}))
    advance(store, "ctx", n=1)
    backend.corrupt(store, "ctx", 1)

    with pytest.raises(CorruptSnapshotError, match="'ctx'"):
        store.read_heads(["fine", "ctx"])
    assert store.read_heads(["fine"])["fine"] == store.read_head("fine")


def test_corrupt_older_head_does_not_hide_the_current_one(backend: Backend, store: Store) -> None:
    store.create(State.new("ctx", {"n": 0}))
    head = advance(store, "ctx", n=1)

    backend.corrupt(store, "ctx", 0)

    assert store.read_head("ctx") == head
    with pytest.raises(CorruptSnapshotError):
        store.read_version("ctx", 0)


# -- every method: bad names and a closed store ---------------------------------------------

NAMED_OPERATIONS: dict[str, Callable[[Store, str], object]] = {
    "create": lambda store, name: store.create(State.new(name)),
    "read_head": lambda store, name: store.read_head(name),
    "head_version": lambda store, name: store.head_version(name),
    "compare_and_set": lambda store, name: store.compare_and_set(next_state(State.new(name)), 0),
    "delete": lambda store, name: store.delete(name),
    "exists": lambda store, name: store.exists(name),
    "list_versions": lambda store, name: store.list_versions(name),
    "read_version": lambda store, name: store.read_version(name, 0),
    "create_recovery_point": lambda store, name: store.create_recovery_point(State.new(name)),
    "list_recovery_points": lambda store, name: store.list_recovery_points(name),
    "read_recovery_point": lambda store, name: store.read_recovery_point(name, 1),
    "delete_recovery_point": lambda store, name: store.delete_recovery_point(name, 1),
}
OPERATIONS: dict[str, Callable[[Store, str], object]] = {
    **NAMED_OPERATIONS,
    "list_contexts": lambda store, name: store.list_contexts(),
}


@pytest.mark.parametrize("operation", list(NAMED_OPERATIONS))
@pytest.mark.parametrize("name", ["", "..", "a/b", "a b", "x" * 201, "ctx\u0430"])
def test_invalid_names_are_refused_by_every_method(store: Store, operation: str, name: str) -> None:
    with pytest.raises(InvalidContextNameError):
        NAMED_OPERATIONS[operation](store, name)

    assert store.list_contexts() == []


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_use_after_close_raises_persistence_error(store: Store, operation: str) -> None:
    store.create(State.new("ctx"))
    store.create_recovery_point(store.read_head("ctx"))

    store.close()

    with pytest.raises(PersistenceError) as caught:
        OPERATIONS[operation](store, "fresh" if operation == "create" else "ctx")
    assert not isinstance(caught.value, CorruptSnapshotError)


def test_close_is_idempotent_and_the_store_is_a_context_manager(
    make_store: Callable[..., Store],
) -> None:
    with make_store() as store:
        store.create(State.new("ctx"))
    store.close()

    with pytest.raises(PersistenceError):
        store.read_head("ctx")


# -- concurrency ----------------------------------------------------------------------------


def test_racing_threads_have_exactly_one_winner_per_version(store: Store) -> None:
    threads = 8
    rounds = 5
    store.create(State.new("ctx", {"winner": None}))
    barrier = threading.Barrier(threads)

    def attempt(index: int, head: State) -> int | tuple[int, int]:
        state = next_state(head, winner=index)
        barrier.wait(timeout=TIMEOUT)
        try:
            store.compare_and_set(state, head.version)
        except VersionConflict as exc:
            return exc.expected, exc.actual
        return index

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for round_ in range(rounds):
            head = store.read_head("ctx")
            assert head.version == round_
            futures = [pool.submit(attempt, index, head) for index in range(threads)]
            results = [future.result(timeout=TIMEOUT) for future in futures]

            winners = [result for result in results if isinstance(result, int)]
            losers = [result for result in results if not isinstance(result, int)]
            assert len(winners) == 1, results
            assert losers == [(round_, round_ + 1)] * (threads - 1)
            assert store.read_head("ctx").get("winner") == winners[0]

    assert store.head_version("ctx") == rounds
