"""`manager.history()` and `manager.load(version=... | at=...)` on every store, through `.get()`
and `await` (the `wait` fixture runs each test both ways)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from actors import (
    ContextManager,
    ContextNotFoundError,
    HistoryEntry,
    InvalidArgumentError,
    InvalidContextNameError,
    PersistenceError,
    State,
    SyncPolicy,
    VersionNotKeptError,
)
from actors.testing import FaultyStore
from storage import MemoryStore, Store
from tests.postgres_server import postgres_server  # noqa: F401 - pytest finds fixtures by name
from tests.redis_cluster import (  # noqa: F401 - pytest finds fixtures by name
    redis_cluster,
    valkey_cluster,
)
from tests.redis_server import redis_server  # noqa: F401 - pytest finds fixtures by name
from tests.storage.test_store_contract import backend  # noqa: F401 - a fixture, found by name
from tests.storage.test_store_contract import make_store as make_store  # noqa: PLC0414 - a fixture

from .conftest import make_manager, run_threads

Wait = Callable[[Any], Any]


@pytest.fixture
def on_store(make_store: Callable[..., Store]) -> Iterator[Callable[..., ContextManager]]:
    """Managers on a store of the backend under test; each is shut down when the test ends."""
    managers: list[ContextManager] = []

    def make(store: Store | None = None, **config: Any) -> ContextManager:
        manager = make_manager(store or make_store(retain_heads=2), **config)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.shutdown().get()


def add(item: int) -> Callable[[State], None]:
    def update(state: State) -> None:
        state.set("items", [*state.get("items"), item])
        state.set("n", item)

    return update


def test_load_of_every_kept_version_is_what_its_caller_was_acknowledged_with(
    on_store: Callable[..., ContextManager], wait: Wait
) -> None:
    manager = on_store(snapshot_every=3)
    acked = {0: manager.create_context("ctx", {"items": [], "n": 0}).get()}
    tracker = manager.get_tracker("ctx").get()
    for item in range(1, 12):
        state = tracker.modify(add(item)).get()
        acked[state.version] = state

    entries: list[HistoryEntry] = wait(manager.history("ctx"))

    kept = [entry.version for entry in entries]
    # A snapshot every 3 writes, two of them kept, and the journal since the older one.
    assert kept == list(range(kept[0], 12))
    assert 0 < kept[0] < 11
    assert entries[0].kind == "snapshot"
    assert entries[0].full
    assert {entry.kind for entry in entries[1:]} == {"journal", "snapshot"}
    assert all(entry.changed == ("items", "n") for entry in entries[1:])
    for version in kept:
        assert wait(manager.load("ctx", version=version)) == acked[version]
        assert wait(manager.load("ctx", at=acked[version].updated_at)) == acked[version]
    with pytest.raises(VersionNotKeptError) as caught:
        wait(manager.load("ctx", version=kept[0] - 1))
    assert caught.value.kept == tuple(kept)
    assert f"versions kept: {kept[0]}-11" in str(caught.value)
    with pytest.raises(VersionNotKeptError):
        wait(manager.load("ctx", at=acked[kept[0]].updated_at - timedelta(microseconds=1)))
    assert wait(manager.load("ctx")) == acked[11]  # without them: the head, as before


def test_history_since_and_limit(on_store: Callable[..., ContextManager], wait: Wait) -> None:
    manager = on_store()
    manager.create_context("ctx", {"items": [], "n": 0}).get()
    tracker = manager.get_tracker("ctx").get()
    for item in range(1, 6):
        tracker.modify(add(item)).get()

    since = wait(manager.history("ctx", since_version=2))
    limited = wait(manager.history("ctx", since_version=2, limit=2))

    assert [entry.version for entry in since] == [2, 3, 4, 5]
    assert [entry.version for entry in limited] == [2, 3]
    assert wait(manager.history("ctx", limit=1))[0].version == 0


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda m: m.history("ctx", since_version=-1), InvalidArgumentError),
        (lambda m: m.history("ctx", since_version="1"), InvalidArgumentError),
        (lambda m: m.history("ctx", limit=0), InvalidArgumentError),
        (lambda m: m.history("bad/name"), InvalidContextNameError),
        (lambda m: m.load("ctx", version=-1), InvalidArgumentError),
        (lambda m: m.load("ctx", version=True), InvalidArgumentError),
        (lambda m: m.load("ctx", at=datetime(2026, 1, 1)), InvalidArgumentError),  # naive
        (lambda m: m.load("ctx", version=0, at=datetime.now().astimezone()), InvalidArgumentError),
        (lambda m: m.load("bad/name", version=0), InvalidContextNameError),
    ],
)
def test_bad_arguments_fail_the_future_at_once(
    manager: ContextManager, wait: Wait, call: Callable[[ContextManager], Any], error: type
) -> None:
    future = call(manager)
    assert future.done()
    with pytest.raises(error):
        wait(future)


def test_unknown_context(manager: ContextManager, wait: Wait) -> None:
    with pytest.raises(ContextNotFoundError):
        wait(manager.history("nope"))
    with pytest.raises(ContextNotFoundError):
        wait(manager.load("nope", version=0))


def test_history_shows_what_is_stored(wait: Wait) -> None:
    batched = make_manager(sync=SyncPolicy.batched(100, None))
    try:
        batched.create_context("ctx", {"items": [], "n": 0}).get()
        tracker = batched.get_tracker("ctx").get()
        for item in range(1, 4):
            tracker.modify(add(item)).get()

        assert [e.version for e in wait(batched.history("ctx"))] == [0]  # not stored yet
        with pytest.raises(VersionNotKeptError):
            wait(batched.load("ctx", version=3))
        batched.save("ctx").get()
        assert [e.version for e in wait(batched.history("ctx"))][-1] == 3
        assert wait(batched.load("ctx", version=3)).get("n") == 3
    finally:
        batched.shutdown().get()


def test_a_store_failure_reaches_the_caller(wait: Wait) -> None:
    store = FaultyStore(MemoryStore())
    manager = make_manager(store)
    try:
        manager.create_context("ctx").get()
        store.fail("read_changes", OSError("disk gone"), times=2)
        with pytest.raises(PersistenceError):
            wait(manager.history("ctx"))
        with pytest.raises(PersistenceError):
            wait(manager.load("ctx", version=0))
        assert [e.version for e in wait(manager.history("ctx"))] == [0]
    finally:
        manager.shutdown().get()


def test_concurrent_callers_restores_and_deletes_each_read_back_as_acknowledged(
    on_store: Callable[..., ContextManager], wait: Wait
) -> None:
    # Callers in threads make the tracker pipeline its writes (chains of journal entries and
    # snapshots stored as one batch); a restore and removed keys are versions like others.
    manager = on_store(snapshot_every=4)
    acked = {0: manager.create_context("ctx", {"items": [], "n": 0}).get()}
    tracker = manager.get_tracker("ctx").get()
    point = manager.create_recovery_point("ctx").get()

    def work(thread: int) -> list[State]:
        return [tracker.modify(add(thread * 100 + i)).get() for i in range(8)]

    for states in run_threads(4, work):
        acked.update((state.version, state) for state in states)
    restored = manager.restore_recovery_point("ctx", point).get()
    acked[restored.version] = restored
    removed = tracker.modify(lambda state: state.delete("n")).get()
    acked[removed.version] = removed

    entries = wait(manager.history("ctx"))

    kept = [entry.version for entry in entries]
    assert kept == list(range(kept[0], removed.version + 1))
    assert entries[-1].removed == ("n",)
    assert entries[-2].changed == ("items", "n")  # the restore: back to version 0's contents
    for version in kept:
        assert wait(manager.load("ctx", version=version)) == acked[version]
