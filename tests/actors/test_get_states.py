"""ContextManager.get_states(): many contexts read in one call, without activating them."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from actors import (
    ContextManager,
    ContextStatus,
    CorruptSnapshotError,
    InvalidArgumentError,
    InvalidContextNameError,
    ShutdownError,
    SyncPolicy,
    create_manager,
)
from actors.testing import FaultyStore
from storage import MemoryStore, PersistenceError, SqliteStore

from .conftest import WAIT, make_manager, make_tracker


def test_reads_stored_contexts_in_the_order_given_without_activating_them(manager):
    manager.create_context("a", {"n": 1}).get(timeout=WAIT)
    manager.create_context("b", {"n": 2}, {"owner": "me"}).get(timeout=WAIT)

    states = manager.get_states(["b", "missing", "a", "b"]).get(timeout=WAIT)

    assert list(states) == ["b", "a"]  # the missing one left out, the repeat read once
    assert (states["b"].data, states["b"].metadata, states["a"].get("n")) == (
        {"n": 2},
        {"owner": "me"},
        1,
    )
    assert manager.active_contexts().get(timeout=WAIT) == []
    assert manager.status("a").get(timeout=WAIT) is ContextStatus.INACTIVE
    assert manager.get_states([]).get(timeout=WAIT) == {}


def test_holds_every_acknowledged_update_of_a_running_tracker(manager):
    tracker = make_tracker(manager, data={"n": 0})
    for n in range(1, 4):
        tracker.set("n", n).get(timeout=WAIT)

    state = manager.get_states(["ctx"]).get(timeout=WAIT)["ctx"]

    assert (state.version, state.get("n")) == (3, 3)
    assert manager.status("ctx").get(timeout=WAIT) is ContextStatus.ACTIVE


def test_returns_copies_the_caller_owns(manager):
    tracker = make_tracker(manager, data={"l": [1]})
    manager.get_states(["ctx"]).get(timeout=WAIT)["ctx"].get("l").append(2)
    assert tracker.get("l").get(timeout=WAIT) == [1]
    assert manager.get_states(["ctx"]).get(timeout=WAIT)["ctx"].get("l") == [1]


def test_under_a_batched_policy_asks_running_trackers_for_what_is_not_stored_yet():
    manager = make_manager(sync=SyncPolicy.batched(max_updates=100, max_delay=None))
    try:
        tracker = make_tracker(manager, data={"n": 0})
        manager.create_context("idle", {"n": 7}).get(timeout=WAIT)
        tracker.set("n", 1).get(timeout=WAIT)  # acknowledged, held by the tracker
        assert manager.store.read_head("ctx").get("n") == 0  # not stored yet

        states = manager.get_states(["ctx", "idle"]).get(timeout=WAIT)

        assert {name: state.get("n") for name, state in states.items()} == {"ctx": 1, "idle": 7}
        assert manager.active_contexts().get(timeout=WAIT) == ["ctx"]
    finally:
        manager.shutdown().get(timeout=WAIT)


def test_under_a_batched_policy_a_deactivated_context_is_read_as_it_wrote_it():
    manager = make_manager(sync=SyncPolicy.batched(max_updates=100, max_delay=None))
    try:
        tracker = make_tracker(manager, data={"n": 0})
        tracker.set("n", 1).get(timeout=WAIT)
        deactivated = manager.deactivate("ctx")  # not waited for: races the read
        states = manager.get_states(["ctx"]).get(timeout=WAIT)
        deactivated.get(timeout=WAIT)
        assert states["ctx"].get("n") == 1
    finally:
        manager.shutdown().get(timeout=WAIT)


def test_sees_what_another_process_wrote(tmp_path: Path):
    # Two managers on one file are two processes as far as the store can tell.
    db = tmp_path / "shared.db"
    with create_manager(f"sqlite:///{db}") as ours, create_manager(f"sqlite:///{db}") as theirs:
        make_tracker(ours, data={"n": 0})  # running here, on version 0
        theirs.get_tracker("ctx").get(timeout=WAIT).set("n", 5).get(timeout=WAIT)

        assert ours.get_states(["ctx"]).get(timeout=WAIT)["ctx"].get("n") == 5


@pytest.mark.parametrize(
    ("names", "error", "named"),
    [
        (["ok", "../x"], InvalidContextNameError, "../x"),
        (["ok", None], InvalidContextNameError, "None"),
        ("ok", InvalidArgumentError, "'ok'"),
        (7, InvalidArgumentError, "int"),
    ],
)
def test_bad_names_are_refused_through_get_and_await(manager, names, error, named):
    manager.create_context("ok").get(timeout=WAIT)
    with pytest.raises(error, match=named):
        manager.get_states(names).get(timeout=WAIT)

    async def awaited() -> None:
        await manager.get_states(names)

    with pytest.raises(error, match=named):
        asyncio.run(awaited())
    assert list(manager.get_states(["ok"]).get(timeout=WAIT)) == ["ok"]  # unharmed


def test_await_gives_the_same_result(manager):
    manager.create_context("a", {"n": 1}).get(timeout=WAIT)

    async def awaited() -> dict[str, int]:
        states = await manager.get_states(["a", "b"])
        return {name: state.get("n") for name, state in states.items()}

    assert asyncio.run(awaited()) == {"a": 1}


def test_a_damaged_head_fails_the_read_naming_it_and_the_manager_lives_on(tmp_path: Path):
    store = SqliteStore(tmp_path / "ctx.db")
    with store, create_manager(store) as manager:  # a Store passed in is the caller's to close
        manager.create_context("fine", {"n": 1}).get(timeout=WAIT)
        manager.create_context("bad", {"n": 2}).get(timeout=WAIT)
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE snapshots SET blob = x'00' WHERE context = 'bad'")
        conn.close()

        with pytest.raises(CorruptSnapshotError, match="'bad'"):
            manager.get_states(["fine", "bad"]).get(timeout=WAIT)
        assert manager.get_states(["fine"]).get(timeout=WAIT)["fine"].get("n") == 1


def test_a_store_failure_reaches_the_caller_and_the_manager_lives_on():
    store = FaultyStore(MemoryStore())
    manager = make_manager(store)
    try:
        manager.create_context("a", {"n": 1}).get(timeout=WAIT)
        store.fail("read_latest", OSError("disk gone"), times=1)
        with pytest.raises(PersistenceError, match="disk gone"):
            manager.get_states(["a"]).get(timeout=WAIT)
        assert manager.get_states(["a"]).get(timeout=WAIT)["a"].get("n") == 1
    finally:
        manager.shutdown().get(timeout=WAIT)


def test_after_shutdown_it_is_refused(manager: ContextManager):
    manager.shutdown().get(timeout=WAIT)
    with pytest.raises(ShutdownError):
        manager.get_states(["a"]).get(timeout=WAIT)
