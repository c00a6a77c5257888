"""Journaled deltas and batched commits, on every store that keeps a journal."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

import psycopg
import pytest
import redis

from storage import (
    ContextNotFoundError,
    CorruptSnapshotError,
    MemoryStore,
    PersistenceError,
    PostgresStore,
    RedisStore,
    SqliteStore,
    State,
    StateError,
    VersionConflict,
)
from storage._delta import Delta
from storage._state import utc_now
from tests.postgres_server import fresh_schema
from tests.redis_cluster import cluster_store, raw_cluster_client


@dataclass(frozen=True)
class Journaled:
    """How these tests build a store that keeps a journal, and damage what it stored."""

    factory: Callable
    """`factory(request, tmp_path, **options)`: a new, empty store."""
    damage_entry: Callable
    """`damage_entry(store, name, version)`: cut the last two bytes off a journal entry."""
    damage_snapshot: Callable
    """`damage_snapshot(store, name, version)`: replace a head snapshot with garbage."""


def _memory(request, tmp_path, **options):
    return MemoryStore(**options)


def _damage_memory_entry(store, name, version):
    journal = store._contexts[name].journal
    journal[version] = journal[version][:-2]


def _damage_memory_snapshot(store, name, version):
    store.corrupt(name, version, b"garbage")


def _sqlite(request, tmp_path, **options):
    return SqliteStore(tmp_path / "journal.db", **options)


def _damage_sqlite_entry(store, name, version):
    with closing(sqlite3.connect(store.path)) as conn, conn:
        conn.execute(
            "UPDATE journal SET blob = substr(blob, 1, length(blob) - 2) "
            "WHERE context = ? AND version = ?",
            (name, version),
        )


def _damage_sqlite_snapshot(store, name, version):
    with closing(sqlite3.connect(store.path)) as conn, conn:
        conn.execute(
            "UPDATE snapshots SET blob = x'00' WHERE context = ? AND version = ?",
            (name, version),
        )


def _redis(request, tmp_path, **options):
    server = request.getfixturevalue("redis_server")
    # The server is shared by the session; a fresh prefix gives each test an empty store.
    return RedisStore("127.0.0.1", server.port, prefix=f"test-{uuid.uuid4().hex}", **options)


def _raw(store):
    """A plain client of the store's server: the key layout of docs/storage.md, by hand."""
    return redis.Redis(host=store.host, port=store.port, db=store.db)


def _damage_redis_entry(store, name, version):
    key = f"{store.prefix}:{{{name}}}:journal"
    with _raw(store) as client:
        blob = client.hget(key, str(version))
        assert isinstance(blob, bytes)
        client.hset(key, str(version), blob[:-2])


def _damage_redis_snapshot(store, name, version):
    with _raw(store) as client:
        assert client.hexists(f"{store.prefix}:{{{name}}}:heads", str(version))
        client.hset(f"{store.prefix}:{{{name}}}:heads", str(version), b"\x00")


def _redis_cluster(request, tmp_path, **options):
    return cluster_store(request, **options)


def _valkey_cluster(request, tmp_path, **options):
    return cluster_store(request, "valkey_cluster", **options)


def _damage_redis_cluster_entry(store, name, version):
    key = f"{store.prefix}:{{{name}}}:journal"
    with raw_cluster_client(store) as client:
        blob = client.hget(key, str(version))
        assert isinstance(blob, bytes)
        client.hset(key, str(version), blob[:-2])


def _damage_redis_cluster_snapshot(store, name, version):
    key = f"{store.prefix}:{{{name}}}:heads"
    with raw_cluster_client(store) as client:
        assert client.hexists(key, str(version))
        client.hset(key, str(version), b"\x00")


def _postgres(request, tmp_path, **options):
    server = request.getfixturevalue("postgres_server")
    # The server is shared by the session; a fresh schema gives each test an empty store.
    return PostgresStore(server.conninfo, schema=fresh_schema(), **options)


def _postgres_sql(store, statement, params):
    """A statement on a plain connection: the schema of docs/storage-postgres.md, by hand."""
    with psycopg.connect(**store._params, autocommit=True) as conn:
        conn.execute(statement.format(schema=store.schema), params)


def _damage_postgres_entry(store, name, version):
    _postgres_sql(
        store,
        "UPDATE {schema}.journal SET blob = substring(blob from 1 for length(blob) - 2) "
        "WHERE context = %s AND version = %s",
        (name, version),
    )


def _damage_postgres_snapshot(store, name, version):
    _postgres_sql(
        store,
        "UPDATE {schema}.snapshots SET blob = '\\x00' WHERE context = %s AND version = %s",
        (name, version),
    )


JOURNALED = {
    "memory": Journaled(_memory, _damage_memory_entry, _damage_memory_snapshot),
    "sqlite": Journaled(_sqlite, _damage_sqlite_entry, _damage_sqlite_snapshot),
    "redis": Journaled(_redis, _damage_redis_entry, _damage_redis_snapshot),
    "redis_cluster": Journaled(
        _redis_cluster, _damage_redis_cluster_entry, _damage_redis_cluster_snapshot
    ),
    "valkey_cluster": Journaled(
        _valkey_cluster, _damage_redis_cluster_entry, _damage_redis_cluster_snapshot
    ),
    "postgres": Journaled(_postgres, _damage_postgres_entry, _damage_postgres_snapshot),
}


@pytest.fixture(params=sorted(JOURNALED))
def journaled(request):
    return JOURNALED[request.param]


@pytest.fixture
def backend(journaled, request, tmp_path):
    opened = []

    def make(**options):
        store = journaled.factory(request, tmp_path, **options)
        opened.append(store)
        return store

    yield make, journaled.damage_entry
    for store in opened:
        store.close()


def _delta(name, version, **changed):
    return Delta(name, version, utc_now(), changed=changed)


def _seed(store, name="ctx", **data):
    state = State.new(name, data or {"n": 0})
    store.create(state)
    return state


def test_head_is_snapshot_plus_journal(backend):
    make, _ = backend
    store = make()
    _seed(store, a=1, b=2)
    store.append(_delta("ctx", 1, a=10), 0)
    store.append(Delta("ctx", 2, utc_now(), removed=("b",), metadata_changed={"m": "x"}), 1)
    head = store.read_head("ctx")
    assert (head.version, head.data, head.metadata) == (2, {"a": 10}, {"m": "x"})
    assert store.head_version("ctx") == 2
    assert store.list_versions("ctx") == [0]  # no new snapshot was written


def test_read_heads_applies_each_context_journal(backend):
    make, _ = backend
    store = make()
    _seed(store, "a", n=0)
    _seed(store, "b", n=0)
    _seed(store, "c", n=0)
    for version in range(1, 4):
        store.append(_delta("a", version, n=version), version - 1)
    store.append(_delta("c", 1, n=10), 0)

    heads = store.read_heads(["a", "b", "c"])

    assert {name: (s.version, s.get("n")) for name, s in heads.items()} == {
        "a": (3, 3),
        "b": (0, 0),
        "c": (1, 10),
    }
    assert heads == {name: store.read_head(name) for name in "abc"}


def test_read_heads_refuses_a_damaged_entry_naming_its_context(backend):
    make, damage_entry = backend
    store = make()
    _seed(store, "a")
    _seed(store, "b")
    store.append(_delta("b", 1, n=1), 0)
    store.append(_delta("b", 2, n=2), 1)
    damage_entry(store, "b", 2)

    with pytest.raises(CorruptSnapshotError, match="'b'"):
        store.read_heads(["a", "b"])


def test_stale_or_gapped_append_is_refused(backend):
    make, _ = backend
    store = make()
    _seed(store)
    store.append(_delta("ctx", 1, n=1), 0)
    with pytest.raises(VersionConflict):
        store.append(_delta("ctx", 1, n=99), 0)
    with pytest.raises(StateError, match="must carry version 2"):
        store.append(_delta("ctx", 3, n=3), 1)
    assert store.read_head("ctx").get("n") == 1


def test_snapshot_compacts_the_journal_under_retention(backend):
    make, _ = backend
    store = make(retain_heads=2)
    state = _seed(store)
    for version in range(1, 6):
        store.append(_delta("ctx", version, n=version), version - 1)
    state = store.read_head("ctx")
    state.version += 1
    store.compare_and_set(state, 5)  # snapshot 6
    assert store._read_journal("ctx", -1) != []  # entries after snapshot 0 are still needed
    state.version += 1
    store.compare_and_set(state, 6)  # snapshot 7: retained snapshots are 6 and 7
    assert store.list_versions("ctx") == [7, 6]
    assert store._read_journal("ctx", -1) == []
    assert store.read_head("ctx").version == 7


def test_batch_commit_reports_each_write(backend):
    make, _ = backend
    store = make()
    _seed(store, "a")
    _seed(store, "b")
    writes = [
        store.prepare_delta(_delta("a", 1, n=1), 0),
        store.prepare_delta(_delta("b", 6, n=1), 5),  # stale: b is at 0
        store.prepare_delta(_delta("a", 2, n=2), 1),  # follows the first in the same batch
        store.prepare_snapshot(State.new("gone"), -1),
    ]
    writes[3] = type(writes[3])("gone", 0, 1, writes[3].blob, journal=False)
    results = store.commit(writes)
    assert results[0] is None
    assert isinstance(results[1], VersionConflict)
    assert results[2] is None
    assert isinstance(results[3], ContextNotFoundError)
    assert store.read_head("a").get("n") == 2
    assert store.read_head("b").version == 0


def test_damaged_journal_entry_ends_replay_and_is_reported(backend):
    make, damage = backend
    store = make()
    _seed(store)
    for version in range(1, 5):
        store.append(_delta("ctx", version, n=version), version - 1)
    damage(store, "ctx", 3)
    with pytest.raises(CorruptSnapshotError, match="journal entry 3"):
        store.read_head("ctx")
    state, found = store.read_latest("ctx")
    assert state.version == 2
    assert state.get("n") == 2
    assert [(d.kind, d.ident) for d in found] == [("journal entry", 3)]


def test_damaged_newest_snapshot_replays_journal_from_an_older_one(backend, journaled):
    make, _ = backend
    store = make(retain_heads=3)
    state = _seed(store)
    state.version = 1
    store.compare_and_set(state, 0)  # snapshot 1
    store.append(_delta("ctx", 2, n=2), 1)
    state = store.read_head("ctx")
    state.version = 3
    store.compare_and_set(state, 2)  # snapshot 3 (holds n=2)
    store.append(_delta("ctx", 4, n=4), 3)
    journaled.damage_snapshot(store, "ctx", 3)
    state, found = store.read_latest("ctx")
    # From snapshot 1, the journal holds 2 but not 3 (3 was a snapshot): replay stops there.
    assert state.version == 2
    assert [d.kind for d in found] == ["snapshot", "journal entry"]


def test_deleted_context_takes_its_journal_along(backend):
    make, _ = backend
    store = make()
    _seed(store)
    store.append(_delta("ctx", 1, n=1), 0)
    store.delete("ctx")
    _seed(store, n=10)

    assert store._read_journal("ctx", -1) == []
    assert store.read_head("ctx").get("n") == 10
    store.append(_delta("ctx", 1, n=11), 0)
    assert store.read_head("ctx").get("n") == 11


def test_journal_write_on_closed_store_fails_whole(backend):
    make, _ = backend
    store = make()
    _seed(store)
    write = store.prepare_delta(_delta("ctx", 1, n=1), 0)
    store.close()
    with pytest.raises(PersistenceError):
        store.commit([write])


def test_delta_between_is_strict_about_json_types():
    old = State.new("c", {"a": [1], "b": True, "c": {"x": 1}, "gone": 0})
    new = old.snapshot()
    new.version = 1
    new.set("a", [1.0])
    new.set("b", 1)
    new.set("c", {"x": 1})
    new.delete("gone")
    delta = Delta.between(old, new)
    assert delta.changed == {"a": [1.0], "b": 1}
    assert delta.removed == ("gone",)
    replayed = old.snapshot()
    delta.apply(replayed)
    assert replayed.data == new.data
    assert [type(v) for v in replayed.data["a"]] == [float]


def test_read_changes_gives_each_version_after_the_one_asked_about(backend):
    make, _ = backend
    store = make(retain_heads=2)
    _seed(store)
    for version in range(1, 4):
        store.append(_delta("ctx", version, n=version), version - 1)
    state = store.read_head("ctx")
    state.version = 4
    state.set("n", 4)
    store.compare_and_set(state, 3)  # version 4 is a snapshot, not an entry
    store.append(_delta("ctx", 5, n=5), 4)

    changes = store.read_changes("ctx", 1)
    assert changes.head == 5
    assert [step.version for step in changes.steps] == [2, 3, 4, 5]
    assert [type(step).__name__ for step in changes.steps] == ["Delta", "Delta", "State", "Delta"]
    assert changes.steps[2].get("n") == 4
    assert store.read_changes("ctx", 5).steps == ()  # up to date

    # Two more snapshots: retention drops snapshot 4 and the entries below the oldest kept.
    for version in (6, 7):
        state = store.read_head("ctx")
        state.version = version
        store.compare_and_set(state, version - 1)
    assert store.read_changes("ctx", 1).steps is None  # versions 2-5 are gone: reload
    assert [step.version for step in store.read_changes("ctx", 5).steps] == [6, 7]
    with pytest.raises(ContextNotFoundError):
        store.read_changes("nope", 0)


def test_read_changes_reports_a_damaged_entry(backend):
    make, damage_entry = backend
    store = make()
    _seed(store)
    store.append(_delta("ctx", 1, n=1), 0)
    damage_entry(store, "ctx", 1)
    with pytest.raises(CorruptSnapshotError):
        store.read_changes("ctx", 0)


def _appended(store, count, name="ctx"):
    """Seed a context holding a list and journal `count` appends to it, each found by the
    diff as edits; returns the State of every version."""
    states = [_seed(store, name, items=list(range(50)), doc={"a": {"b": 0}, "c": 1})]
    for version in range(1, count + 1):
        old = states[-1]
        new = old.successor(old.snapshot())
        new.data["items"].append(version)
        if version % 2:
            new.data["doc"]["a"]["b"] = version
        delta = Delta.between(old, new, "update")
        assert delta.edits
        store.append(delta, version - 1)
        states.append(new)
    return states


def test_entries_of_edits_replay_exactly_on_every_store(backend):
    make, _ = backend
    store = make()
    states = _appended(store, 6)
    assert store.read_head("ctx") == states[-1]
    changes = store.read_changes("ctx", 2)
    state = states[2].snapshot()
    for step in changes.steps:
        step.apply(state)
        # Read back and applied, each step names every key it set, with its new value.
        assert step.changed == {key: state.data[key] for key in step.keys_set}
    assert state == states[-1]
    assert [(e.version, e.cause) for e in store.history("ctx")][1:] == [
        (version, "update") for version in range(1, 7)
    ]


def test_a_damaged_entry_of_edits_ends_replay_and_is_reported(backend):
    make, damage = backend
    store = make()
    states = _appended(store, 4)
    damage(store, "ctx", 3)
    with pytest.raises(CorruptSnapshotError, match="journal entry 3"):
        store.read_head("ctx")
    state, found = store.read_latest("ctx")
    assert state == states[2]
    assert [(d.kind, d.ident) for d in found] == [("journal entry", 3)]


def test_an_entry_whose_edits_do_not_fit_ends_replay_and_is_reported(backend):
    # Well framed and well formed, so only replay finds it: its edit leads nowhere.
    make, _ = backend
    store = make()
    states = _appended(store, 2)
    store.append(Delta("ctx", 3, utc_now(), edits={"items": [["s", [999], 1]]}), 2)
    store.append(_delta("ctx", 4, n=4), 3)
    with pytest.raises(CorruptSnapshotError, match="journal entry of context 'ctx' version 3"):
        store.read_head("ctx")
    state, found = store.read_latest("ctx")
    assert state == states[2]
    assert [(d.kind, d.ident) for d in found] == [("journal entry", 3)]
