"""Journaled deltas and batched commits, on every store that keeps a journal."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from storage import (
    ContextNotFoundError,
    CorruptSnapshotError,
    MemoryStore,
    PersistenceError,
    SqliteStore,
    State,
    StateError,
    VersionConflict,
)
from storage._delta import Delta
from storage._state import utc_now


def _memory(tmp_path, **options):
    return MemoryStore(**options)


def _sqlite(tmp_path, **options):
    return SqliteStore(tmp_path / "journal.db", **options)


def _damage_memory(store, name, version):
    journal = store._contexts[name].journal
    journal[version] = journal[version][:-2]


def _damage_sqlite(store, name, version):
    with closing(sqlite3.connect(store.path)) as conn, conn:
        conn.execute(
            "UPDATE journal SET blob = substr(blob, 1, length(blob) - 2) "
            "WHERE context = ? AND version = ?",
            (name, version),
        )


JOURNALED = {"memory": (_memory, _damage_memory), "sqlite": (_sqlite, _damage_sqlite)}


@pytest.fixture(params=sorted(JOURNALED))
def backend(request, tmp_path):
    factory, damage = JOURNALED[request.param]
    opened = []

    def make(**options):
        store = factory(tmp_path, **options)
        opened.append(store)
        return store

    yield make, damage
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


def test_damaged_newest_snapshot_replays_journal_from_an_older_one(backend, tmp_path):
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
    if isinstance(store, MemoryStore):
        store.corrupt("ctx", 3, b"garbage")
    else:
        with closing(sqlite3.connect(store.path)) as conn, conn:
            conn.execute("UPDATE snapshots SET blob = x'00' WHERE version = 3")
    state, found = store.read_latest("ctx")
    # From snapshot 1, the journal holds 2 but not 3 (3 was a snapshot): replay stops there.
    assert state.version == 2
    assert [d.kind for d in found] == ["snapshot", "journal entry"]


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
